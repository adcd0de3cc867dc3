"""The service desk: contacts on every channel, cases, emergency cards, communications log."""
