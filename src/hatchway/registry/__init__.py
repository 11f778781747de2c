"""The registry service: blobs, uploads, manifests, tags, catalog, referrers, gc.

Never imports the web framework or the auth layer.
"""
