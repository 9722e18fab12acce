"""A unit's sign-in on the report form: the unit presents its API key once and gets a session cookie.

The cookie carries a random token (never the API key); only its SHA-256 hash is stored, in `intake.unit_sessions`,
with an expiry. Signing out deletes the row; a deactivated unit's sessions stop authenticating at once (the lookup
joins the active units). Rooms as elsewhere: `api.py`, `schemas.py`, `service.py`, `repository.py`, `models.py`.
"""
