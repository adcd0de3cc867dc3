"""The one customer record: members, their card product and tier, language and country."""
