"""Who you are and what you may do. Never imports the web framework or the registry."""
