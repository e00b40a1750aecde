"""The permissions of the CRM (docs/crm.md, "Who may do what"). Reading contacts
(``contacts:read``) is the inbox's, whose contact events need it; an agent holds it, and
``contacts:write``, for the contacts of the conversations they can see."""

from __future__ import annotations

from omnichannel_core.module import PermissionSpec, Role

CONTACTS_READ = "contacts:read"
CONTACTS_WRITE = "contacts:write"
CONTACTS_MERGE = "contacts:merge"
CONTACTS_IMPORT = "contacts:import"
CONTACTS_EXPORT = "contacts:export"
CONTACTS_ERASE = "contacts:erase"
ATTRIBUTES_MANAGE = "crm:attributes"
"""Declaring, changing and dropping custom attribute definitions."""
NOTES_MANAGE = "notes:manage"
"""Editing and deleting anyone's notes (one's own needs only ``contacts:write``)."""
SEGMENTS_READ = "segments:read"
SEGMENTS_WRITE = "segments:write"

PERMISSIONS = [
    PermissionSpec(
        CONTACTS_WRITE,
        "create and change contacts (agents: those they can see), write notes",
        (Role.SUPERVISOR, Role.AGENT),
    ),
    PermissionSpec(
        CONTACTS_MERGE,
        "merge two contacts into one; add and remove the addresses a contact is reached at",
        (Role.SUPERVISOR,),
    ),
    PermissionSpec(CONTACTS_IMPORT, "import contacts from CSV", (Role.SUPERVISOR,)),
    PermissionSpec(
        CONTACTS_EXPORT, "export contacts, a segment, or all about one contact", (Role.SUPERVISOR,)
    ),
    PermissionSpec(CONTACTS_ERASE, "erase a contact and all about them (GDPR)", ()),
    PermissionSpec(NOTES_MANAGE, "edit and delete anyone's notes on contacts", ()),
    PermissionSpec(ATTRIBUTES_MANAGE, "declare, change and drop custom attributes", ()),
    PermissionSpec(
        SEGMENTS_READ, "read segments and their members", (Role.SUPERVISOR,), scopes=("read",)
    ),
    PermissionSpec(SEGMENTS_WRITE, "create, change and delete segments", (Role.SUPERVISOR,)),
]
