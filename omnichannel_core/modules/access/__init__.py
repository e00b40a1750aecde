"""The access module: users, roles, sessions, API keys and the audit log's API.

It contributes the permissions of accounts, users, keys and the audit log; the ``access``
store; the authenticator that tells who presents a bearer token (a user's access token, an
API key, or the bootstrap key); the :class:`~omnichannel_core.module.UserDirectory` service;
and the routes under ``/api/auth/``, ``/api/users``, ``/api/api-keys`` and ``/api/audit``.
docs/access.md describes it for users.
"""
