"""Who is asking: identity backends behind one Protocol (``base.Authenticator``).

Import the backends from their modules (``identity.local``, ``identity.htpasswd``);
this package imports nothing so credentials code can use ``identity.base`` freely.
"""
