"""The only package that imports the web framework (aiohttp): it translates HTTP."""
