"""The hatchway client: talks to any Docker/OCI registry over HTTP; imports no server code."""
