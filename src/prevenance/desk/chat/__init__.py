"""Member chat, offered at the moments that matter: conversations, messages, agents' teams."""
