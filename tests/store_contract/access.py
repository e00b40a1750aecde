"""Access: users, sessions and refresh tokens, API keys and failed logins, as the access
module's ``AccessStore`` promises them; and the core's audit log, as ``AuditLog`` does."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict, InvalidInput, NotFound
from omnichannel_core.ids import new_id
from omnichannel_core.models import utcnow
from omnichannel_core.modules.access.records import Refreshed, RefreshOutcome, User
from omnichannel_core.policy import Role
from tests.store_contract.fixtures import IMPOSSIBLE_IDS, Run, StoreFixtures
from tests.store_contract.paging import INVALID_CURSORS, all_pages, forged_cursors

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
"""A fixed instant for the methods that take the time from the caller."""
HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


class AccessContract(StoreFixtures):
    """What the access store's methods promise (``self.access``), and the audit log's
    (``self.audit``)."""

    def _user(
        self, run: Run[Any], email: str = "ann@example.test", role: Role = Role.AGENT
    ) -> User:
        return run(self.access.create_user(email, f"Name of {email}", role, f"hash-of-{email}"))

    def _session(self, run: Run[Any], user: User, token: str) -> str:
        return run(self.access.create_session(user.id, token, utcnow() + HOUR))

    def _rotate(
        self, run: Run[Any], token: str, new: str, now: datetime | None = None
    ) -> Refreshed:
        """Present ``token`` at ``now`` (the current time if None) for an hour-long ``new``."""
        now = utcnow() if now is None else now
        return run(self.access.rotate_refresh_token(token, new, now + HOUR, now))

    def _entry(self, action: str, at: datetime, **fields: Any) -> AuditEntry:
        return AuditEntry(new_id("aud"), action, "user", "usr_actor", at=at, **fields)

    # Users

    def test_create_user_stores_the_email_lower_cased(self, run):
        """A new user is active, with its email lower-cased; get_user returns it as created."""
        user = run(
            self.access.create_user("Ann.Lee@Example.TEST", "Ann Lee", Role.SUPERVISOR, "h1")
        )
        assert user.email == "ann.lee@example.test"
        assert (user.display_name, user.role, user.active) == ("Ann Lee", Role.SUPERVISOR, True)
        assert isinstance(user.id, str) and user.id
        assert run(self.access.get_user(user.id)) == user

    def test_duplicate_email_in_any_case_is_conflict(self, run):
        """A second user with the same email, in any case, raises Conflict and is not stored."""
        first = self._user(run, "ann@example.test")
        with pytest.raises(Conflict):
            self._user(run, "ANN@Example.Test")
        assert run(self.access.list_users(None, 10)).items == [first]

    def test_user_credentials_found_by_email_in_any_case(self, run):
        """user_credentials finds the user and its password hash by email in any case, None
        for an unknown email; user_credentials_by_id finds the same by id."""
        user = run(self.access.create_user("ann@example.test", "Ann", Role.AGENT, "argon-hash"))
        for email in ("ann@example.test", "ANN@EXAMPLE.TEST", "Ann@example.Test"):
            credentials = run(self.access.user_credentials(email))
            assert credentials is not None
            assert (credentials.user, credentials.password_hash) == (user, "argon-hash")
        assert run(self.access.user_credentials("bob@example.test")) is None
        by_id = run(self.access.user_credentials_by_id(user.id))
        assert (by_id.user, by_id.password_hash) == (user, "argon-hash")

    def test_unknown_access_ids_are_not_found(self, run):
        """Every access read or change by an id that does not exist raises NotFound, and a
        session cannot start for an unknown user."""
        calls = [
            self.access.get_user("usr_missing"),
            self.access.user_credentials_by_id("usr_missing"),
            self.access.update_user("usr_missing", display_name="x"),
            self.access.create_session("usr_missing", "token-1", utcnow() + HOUR),
            self.access.get_api_key("key_missing"),
            self.access.revoke_api_key("key_missing", T0),
            self.access.touch_api_key("key_missing", T0),
        ]
        for call in calls:
            with pytest.raises(NotFound):
                run(call)

    def test_access_ids_no_record_can_have_are_not_found(self, run):
        """An id no record can have (``a/b``, ``..``, ``__x__``, empty, too long) is NotFound
        like any unknown one, for every access read or change by id."""
        self._user(run)
        for bad in IMPOSSIBLE_IDS:
            calls = [
                self.access.get_user(bad),
                self.access.user_credentials_by_id(bad),
                self.access.update_user(bad, display_name="x"),
                self.access.create_session(bad, "token-1", utcnow() + HOUR),
                self.access.get_api_key(bad),
                self.access.revoke_api_key(bad, T0),
                self.access.touch_api_key(bad, T0),
            ]
            for call in calls:
                with pytest.raises(NotFound):
                    run(call)

    def test_list_users_oldest_first_in_pages(self, run):
        """Users are listed oldest first; following next_cursor at any page size yields each
        once, in that order."""
        ids = [self._user(run, f"user{n}@example.test").id for n in range(5)]
        assert [user.id for user in run(self.access.list_users(None, 10)).items] == ids
        for limit in (1, 2, 3, 5, 6):
            assert (
                all_pages(run, lambda cursor, size: self.access.list_users(cursor, size), limit)
                == ids
            )

    @pytest.mark.parametrize("cursor", INVALID_CURSORS)
    def test_invalid_cursor_on_access_lists_is_invalid_input(self, run, cursor):
        """A cursor the store did not make raises InvalidInput on users, keys and audit."""
        for call in (
            lambda: self.access.list_users(cursor, 10),
            lambda: self.access.list_api_keys(cursor, 10),
            lambda: self.audit.list(None, cursor, 10),
            lambda: self.audit.list("auth.login", cursor, 10),
        ):
            with pytest.raises(InvalidInput):
                run(call())

    def test_a_forged_cursor_on_access_lists_is_invalid_input(self, run):
        """A cursor of the right shape that no users, keys or audit page could have made
        (``["", ""]``, a timestamp in another format, another list's id) raises
        InvalidInput naming the cursor."""
        lists = {
            "usr": lambda cursor: self.access.list_users(cursor, 10),
            "key": lambda cursor: self.access.list_api_keys(cursor, 10),
            "aud": lambda cursor: self.audit.list(None, cursor, 10),
        }
        for prefix, fetch in lists.items():
            for cursor in forged_cursors(prefix):
                with pytest.raises(InvalidInput) as refused:
                    run(fetch(cursor))
                assert refused.value.details == {"parameter": "cursor"}
        with pytest.raises(InvalidInput):
            run(self.audit.list("auth.login", forged_cursors("aud")[0], 10))

    def test_update_user_changes_only_given_fields(self, run):
        """update_user changes the fields given and keeps the rest; the password hash is
        changed only when given."""
        self._user(run, "admin@example.test", Role.ADMIN)
        user = run(self.access.create_user("ann@example.test", "Ann", Role.AGENT, "old-hash"))
        renamed = run(self.access.update_user(user.id, display_name="Ann Lee"))
        assert (renamed.display_name, renamed.role, renamed.active) == ("Ann Lee", Role.AGENT, True)
        assert (renamed.email, renamed.created_at) == (user.email, user.created_at)
        assert renamed.updated_at >= user.updated_at
        promoted = run(self.access.update_user(user.id, role=Role.SUPERVISOR))
        assert (promoted.display_name, promoted.role) == ("Ann Lee", Role.SUPERVISOR)
        assert run(self.access.user_credentials_by_id(user.id)).password_hash == "old-hash"
        run(self.access.update_user(user.id, password_hash="new-hash"))
        credentials = run(self.access.user_credentials_by_id(user.id))
        assert credentials.password_hash == "new-hash"
        assert (credentials.user.display_name, credentials.user.role) == (
            "Ann Lee",
            Role.SUPERVISOR,
        )
        assert run(self.access.get_user(user.id)) == credentials.user

    def test_deactivating_a_user_ends_their_sessions(self, run):
        """Deactivating a user ends every session of theirs at once (their refresh tokens
        answer UNKNOWN) and no other user's; reactivating revives none, and an inactive user
        can start no session."""
        self._user(run, "admin@example.test", Role.ADMIN)
        ann = self._user(run, "ann@example.test")
        bob = self._user(run, "bob@example.test")
        first = self._session(run, ann, "ann-1")
        second = self._session(run, ann, "ann-2")
        bobs = self._session(run, bob, "bob-1")
        deactivated = run(self.access.update_user(ann.id, active=False))
        assert deactivated.active is False
        assert run(self.access.get_user(ann.id)).active is False
        assert run(self.access.user_credentials("ann@example.test")).user.active is False
        for session_id, token in ((first, "ann-1"), (second, "ann-2")):
            assert run(self.access.session_user(ann.id, session_id)) is None
            assert self._rotate(run, token, token + "x").outcome is RefreshOutcome.UNKNOWN
        with pytest.raises(NotFound):
            run(self.access.create_session(ann.id, "ann-3", utcnow() + HOUR))
        assert run(self.access.session_user(bob.id, bobs)) == bob
        run(self.access.update_user(ann.id, active=True))
        assert run(self.access.session_user(ann.id, first)) is None
        assert self._rotate(run, "ann-2", "ann-2y").outcome is RefreshOutcome.UNKNOWN

    def test_last_active_admin_cannot_be_demoted_or_deactivated(self, run):
        """Demoting or deactivating the only active admin raises Conflict and changes
        nothing, not even the other fields given; an inactive admin does not count."""
        admin = self._user(run, "admin@example.test", Role.ADMIN)
        session_id = self._session(run, admin, "admin-1")
        spare = self._user(run, "spare@example.test", Role.ADMIN)
        run(self.access.update_user(spare.id, active=False))
        for change in (
            {"role": Role.AGENT},
            {"role": Role.SUPERVISOR, "display_name": "Renamed"},
            {"active": False},
            {"active": False, "password_hash": "new-hash"},
        ):
            with pytest.raises(Conflict):
                run(self.access.update_user(admin.id, **change))
        assert run(self.access.get_user(admin.id)) == admin
        assert (
            run(self.access.user_credentials_by_id(admin.id)).password_hash
            == f"hash-of-{admin.email}"
        )
        assert run(self.access.session_user(admin.id, session_id)) == admin
        renamed = run(
            self.access.update_user(admin.id, display_name="Still admin", role=Role.ADMIN)
        )
        assert (renamed.role, renamed.active, renamed.display_name) == (
            Role.ADMIN,
            True,
            "Still admin",
        )

    def test_one_of_two_active_admins_may_be_demoted_or_deactivated(self, run):
        """With two active admins, one may be demoted (or deactivated); then the other is the
        last and is protected."""
        first = self._user(run, "first@example.test", Role.ADMIN)
        second = self._user(run, "second@example.test", Role.ADMIN)
        assert run(self.access.update_user(first.id, role=Role.AGENT)).role is Role.AGENT
        with pytest.raises(Conflict):
            run(self.access.update_user(second.id, active=False))
        run(self.access.update_user(first.id, role=Role.ADMIN))
        assert run(self.access.update_user(second.id, active=False)).active is False
        with pytest.raises(Conflict):
            run(self.access.update_user(first.id, role=Role.AGENT))
        agent = self._user(run, "agent@example.test")
        assert run(self.access.update_user(agent.id, active=False)).active is False

    def test_has_active_admin_counts_only_active_admins(self, run):
        """has_active_admin is False with no users, with only agents and supervisors, and
        with only an inactive admin; True once an admin is active."""
        assert run(self.access.has_active_admin()) is False
        self._user(run, "agent@example.test")
        self._user(run, "boss@example.test", Role.SUPERVISOR)
        assert run(self.access.has_active_admin()) is False
        first = self._user(run, "first@example.test", Role.ADMIN)
        assert run(self.access.has_active_admin()) is True
        second = self._user(run, "second@example.test", Role.ADMIN)
        run(self.access.update_user(first.id, active=False))
        assert run(self.access.has_active_admin()) is True
        run(self.access.update_user(first.id, active=True))
        run(self.access.update_user(second.id, role=Role.AGENT))
        assert run(self.access.has_active_admin()) is True

    # Sessions and refresh tokens

    def test_rotate_a_valid_token(self, run):
        """A valid, unused refresh token rotates: ROTATED with the session's user and id,
        and the new token is the one that rotates next."""
        user = self._user(run)
        session_id = self._session(run, user, "t1")
        rotated = self._rotate(run, "t1", "t2")
        assert (rotated.outcome, rotated.user, rotated.session_id) == (
            RefreshOutcome.ROTATED,
            user,
            session_id,
        )
        again = self._rotate(run, "t2", "t3")
        assert (again.outcome, again.session_id) == (RefreshOutcome.ROTATED, session_id)
        assert run(self.access.session_user(user.id, session_id)) == user

    def test_rotate_an_unknown_token(self, run):
        """A hash no session holds answers UNKNOWN, with no user or session."""
        self._session(run, self._user(run), "t1")
        refreshed = self._rotate(run, "nobody-has-this", "t2")
        assert (refreshed.outcome, refreshed.user, refreshed.session_id) == (
            RefreshOutcome.UNKNOWN,
            None,
            None,
        )
        assert self._rotate(run, "t2", "t3").outcome is RefreshOutcome.UNKNOWN

    def test_rotate_an_expired_token_is_unknown_and_changes_nothing(self, run):
        """A token presented at or after its expiry answers UNKNOWN and is not used up: the
        same token still rotates before its expiry, and its would-be successor never
        existed."""
        user = self._user(run)
        run(self.access.create_session(user.id, "t1", T0))
        for now in (T0, T0 + MINUTE):
            expired = run(self.access.rotate_refresh_token("t1", "t2", T0 + HOUR, now))
            assert expired.outcome is RefreshOutcome.UNKNOWN
        assert self._rotate(run, "t2", "t3", T0 - MINUTE).outcome is RefreshOutcome.UNKNOWN
        rotated = run(self.access.rotate_refresh_token("t1", "t4", T0 + HOUR, T0 - MINUTE))
        assert rotated.outcome is RefreshOutcome.ROTATED
        still = run(self.access.rotate_refresh_token("t4", "t5", T0 + 2 * HOUR, T0 + HOUR - MINUTE))
        assert still.outcome is RefreshOutcome.ROTATED

    def test_rotate_a_token_of_an_ended_session_is_unknown(self, run):
        """After logout, the session's current token answers UNKNOWN."""
        user = self._user(run)
        session_id = self._session(run, user, "t1")
        self._rotate(run, "t1", "t2")
        assert run(self.access.end_session(session_id)) is True
        assert self._rotate(run, "t2", "t3").outcome is RefreshOutcome.UNKNOWN
        assert self._rotate(run, "t1", "t3").outcome is RefreshOutcome.UNKNOWN

    def test_reused_token_ends_its_session(self, run):
        """Presenting a used token again answers REUSED and ends its session: the family's
        current token then answers UNKNOWN, the session no longer authenticates, and the
        user's other sessions live on."""
        user = self._user(run)
        session_id = self._session(run, user, "t1")
        other = self._session(run, user, "other-1")
        assert self._rotate(run, "t1", "t2").outcome is RefreshOutcome.ROTATED
        reused = self._rotate(run, "t1", "t3")
        assert (reused.outcome, reused.session_id) == (RefreshOutcome.REUSED, session_id)
        assert self._rotate(run, "t2", "t4").outcome is RefreshOutcome.UNKNOWN
        assert self._rotate(run, "t3", "t5").outcome is RefreshOutcome.UNKNOWN
        assert run(self.access.session_user(user.id, session_id)) is None
        assert run(self.access.end_session(session_id)) is False
        assert run(self.access.session_user(user.id, other)) == user
        assert self._rotate(run, "other-1", "other-2").outcome is RefreshOutcome.ROTATED

    def test_a_used_token_past_its_expiry_is_unknown(self, run):
        """A used token presented after it expired answers UNKNOWN (expiry is checked
        first) and its session lives on."""
        user = self._user(run)
        session_id = run(self.access.create_session(user.id, "t1", T0))
        run(self.access.rotate_refresh_token("t1", "t2", T0 + HOUR, T0 - MINUTE))
        late = run(self.access.rotate_refresh_token("t1", "t3", T0 + HOUR, T0 + MINUTE))
        assert late.outcome is RefreshOutcome.UNKNOWN
        assert run(self.access.session_user(user.id, session_id)) == user
        on_time = run(self.access.rotate_refresh_token("t2", "t4", T0 + 2 * HOUR, T0 + MINUTE))
        assert on_time.outcome is RefreshOutcome.ROTATED

    def test_end_session(self, run):
        """end_session answers True when it ended an active session, False when it had
        ended or never existed; only that session ends."""
        user = self._user(run)
        session_id = self._session(run, user, "t1")
        other = self._session(run, user, "other-1")
        assert run(self.access.end_session(session_id)) is True
        assert run(self.access.end_session(session_id)) is False
        assert run(self.access.end_session("ses_missing")) is False
        assert run(self.access.session_user(user.id, session_id)) is None
        assert run(self.access.session_user(user.id, other)) == user

    def test_end_user_sessions_but_one(self, run):
        """end_user_sessions ends the user's active sessions but the one excepted and
        answers how many it ended; other users' sessions live on."""
        ann = self._user(run, "ann@example.test")
        bob = self._user(run, "bob@example.test")
        kept, *ended = [self._session(run, ann, f"ann-{n}") for n in range(3)]
        bobs = self._session(run, bob, "bob-1")
        assert run(self.access.end_user_sessions(ann.id, except_session_id=kept)) == 2
        assert run(self.access.end_user_sessions(ann.id, except_session_id=kept)) == 0
        for session_id in ended:
            assert run(self.access.session_user(ann.id, session_id)) is None
        assert self._rotate(run, "ann-1", "x").outcome is RefreshOutcome.UNKNOWN
        assert run(self.access.session_user(ann.id, kept)) == ann
        assert run(self.access.end_user_sessions(ann.id)) == 1
        assert run(self.access.session_user(ann.id, kept)) is None
        assert run(self.access.end_user_sessions("usr_missing")) == 0
        assert run(self.access.session_user(bob.id, bobs)) == bob

    def test_session_user_only_for_the_owner_of_a_live_session(self, run):
        """session_user answers the user for their own active session, else None."""
        ann = self._user(run, "ann@example.test")
        bob = self._user(run, "bob@example.test")
        session_id = self._session(run, ann, "t1")
        assert run(self.access.session_user(ann.id, session_id)) == ann
        assert run(self.access.session_user(bob.id, session_id)) is None
        assert run(self.access.session_user(ann.id, "ses_missing")) is None
        assert run(self.access.session_user("usr_missing", session_id)) is None

    # API keys

    def test_create_api_key(self, run):
        """A new key keeps its name, prefix and creator, its scopes sorted, and is neither
        used nor revoked; found by id and by hash, None for an unknown hash."""
        admin = self._user(run, "admin@example.test", Role.ADMIN)
        scopes = ("read", "contacts:write", "conversations:read")
        key = run(self.access.create_api_key("CRM sync", scopes, "oc_ab12", "sha-1", admin.id))
        assert (key.name, key.prefix, key.created_by) == ("CRM sync", "oc_ab12", admin.id)
        assert key.scopes == ("contacts:write", "conversations:read", "read")
        assert (key.last_used_at, key.revoked_at, key.revoked) == (None, None, False)
        assert run(self.access.get_api_key(key.id)) == key
        assert run(self.access.api_key_by_hash("sha-1")) == key
        assert run(self.access.api_key_by_hash("sha-unknown")) is None
        system = run(self.access.create_api_key("cli", (), "oc_cd34", "sha-2", None))
        assert (system.created_by, system.scopes) == (None, ())

    def test_duplicate_api_key_hash_is_conflict(self, run):
        """A second key with a stored hash raises Conflict; the first stays as it was."""
        first = run(self.access.create_api_key("one", ("read",), "oc_1", "sha-1", None))
        with pytest.raises(Conflict):
            run(self.access.create_api_key("two", ("write",), "oc_2", "sha-1", None))
        assert run(self.access.api_key_by_hash("sha-1")) == first
        assert run(self.access.list_api_keys(None, 10)).items == [first]

    def test_list_api_keys_oldest_first_revoked_included(self, run):
        """Keys are listed oldest first, revoked ones included, in pages."""
        ids = [
            run(self.access.create_api_key(f"k{n}", ("read",), f"oc_{n}", f"sha-{n}", None)).id
            for n in range(5)
        ]
        run(self.access.revoke_api_key(ids[1], T0))
        page = run(self.access.list_api_keys(None, 10)).items
        assert [key.id for key in page] == ids
        assert [key.revoked for key in page] == [False, True, False, False, False]
        for limit in (1, 2, 3, 5, 6):
            listed = all_pages(
                run, lambda cursor, size: self.access.list_api_keys(cursor, size), limit
            )
            assert listed == ids

    def test_revoke_api_key_keeps_the_first_time(self, run):
        """Revoking records the time; revoking again keeps the first time; a revoked key is
        still found by id and by hash."""
        key = run(self.access.create_api_key("k", ("read",), "oc_1", "sha-1", None))
        revoked = run(self.access.revoke_api_key(key.id, T0))
        assert (revoked.revoked_at, revoked.revoked) == (T0, True)
        assert run(self.access.revoke_api_key(key.id, T0 + HOUR)).revoked_at == T0
        assert run(self.access.revoke_api_key(key.id, T0 - HOUR)).revoked_at == T0
        assert run(self.access.get_api_key(key.id)) == revoked
        assert run(self.access.api_key_by_hash("sha-1")) == revoked

    def test_touch_api_key_never_moves_back(self, run):
        """touch_api_key records the time of use; an earlier time than the one recorded
        changes nothing."""
        key = run(self.access.create_api_key("k", ("read",), "oc_1", "sha-1", None))
        other = run(self.access.create_api_key("other", ("read",), "oc_2", "sha-2", None))
        run(self.access.touch_api_key(key.id, T0))
        assert run(self.access.get_api_key(key.id)).last_used_at == T0
        run(self.access.touch_api_key(key.id, T0 - MINUTE))
        assert run(self.access.get_api_key(key.id)).last_used_at == T0
        run(self.access.touch_api_key(key.id, T0 + MINUTE))
        touched = run(self.access.get_api_key(key.id))
        assert touched.last_used_at == T0 + MINUTE
        assert (touched.name, touched.scopes, touched.revoked_at) == (key.name, key.scopes, None)
        assert run(self.access.get_api_key(other.id)).last_used_at is None

    # Failed logins

    def test_login_attempts_are_reserved_until_the_limit_then_refused(self, run):
        """reserve_login_attempt counts each attempt of an email (any case) as a failure
        until ``limit`` failures lie within the window; then it counts nothing and answers
        when the oldest locking failure leaves the window. Other emails are counted apart,
        and failures that left the window free the email again."""
        window, limit = 10 * MINUTE, 3
        email = "Ann@Example.test"
        reserved = [
            run(self.access.reserve_login_attempt(address, T0 + n * MINUTE, window, limit))
            for n, address in enumerate((email, email.upper(), email.lower()))
        ]
        assert reserved == [None, None, None]
        assert run(self.access.reserve_login_attempt(email, T0 + 3 * MINUTE, window, limit)) == (
            T0 + window
        )
        assert run(self.access.reserve_login_attempt("bob@example.test", T0, window, limit)) is None
        # 10 minutes 30 in: the failure at 0 left the window; those at 1 and 2 stay.
        later = T0 + window + MINUTE / 2
        assert run(self.access.reserve_login_attempt(email, later, window, limit)) is None
        assert (
            run(self.access.reserve_login_attempt(email, later, window, limit))
            == T0 + MINUTE + window
        )

    def test_with_more_failures_than_the_limit_the_lock_lasts_until_enough_leave(self, run):
        """When the limit is lowered below the failures kept, the email stays locked until
        so many have left the window that fewer than ``limit`` remain."""
        window = 10 * MINUTE
        for n in range(4):
            assert (
                run(self.access.reserve_login_attempt("c@example.test", T0 + n * MINUTE, window, 9))
                is None
            )
        assert run(
            self.access.reserve_login_attempt("c@example.test", T0 + 5 * MINUTE, window, 2)
        ) == (T0 + 2 * MINUTE + window)

    def test_concurrent_login_attempts_never_pass_the_limit(self, run):
        """Reservations made at once for one email: exactly ``limit`` are granted."""

        async def together() -> list:
            return await asyncio.gather(
                *(
                    self.access.reserve_login_attempt("d@example.test", T0, 10 * MINUTE, 5)
                    for _ in range(20)
                )
            )

        answers = run(together())
        assert answers.count(None) == 5
        assert all(answer == T0 + 10 * MINUTE for answer in answers if answer is not None)

    def test_clear_login_failures_forgets_one_email(self, run):
        """clear_login_failures forgets the email's failures (any case), not others'."""
        window, limit = 10 * MINUTE, 2
        run(self.access.reserve_login_attempt("ann@example.test", T0, window, limit))
        run(self.access.reserve_login_attempt("ann@example.test", T0 + MINUTE, window, limit))
        run(self.access.reserve_login_attempt("bob@example.test", T0, window, limit))
        run(self.access.reserve_login_attempt("bob@example.test", T0, window, limit))
        run(self.access.clear_login_failures("ANN@example.test"))
        assert (
            run(
                self.access.reserve_login_attempt(
                    "ann@example.test", T0 + 2 * MINUTE, window, limit
                )
            )
            is None
        )
        assert (
            run(
                self.access.reserve_login_attempt(
                    "bob@example.test", T0 + 2 * MINUTE, window, limit
                )
            )
            is not None
        )

    # Audit log

    def test_audit_entries_listed_newest_first_as_appended(self, run):
        """Appended entries come back whole (details, target, client address), newest
        first by their time, whatever order they were appended in."""
        middle = self._entry(
            "user.created",
            T0,
            target_type="user",
            target_id="usr_new",
            details={"role": "agent", "nested": {"list": [1, "two", None]}},
            client_address="127.0.0.1",
        )
        oldest = self._entry("auth.login", T0 - HOUR)
        newest = AuditEntry(new_id("aud"), "api_key.revoked", "system", None, at=T0 + HOUR)
        for entry in (middle, oldest, newest):
            run(self.audit.append(entry))
        assert run(self.audit.list(None, None, 10)).items == [newest, middle, oldest]

    def test_list_audit_filters_by_action_in_pages(self, run):
        """list_audit with an action lists only that action's entries, newest first; every
        list pages through each entry once."""
        entries = [
            self._entry("auth.login" if n % 2 else "auth.login_failed", T0 + n * MINUTE)
            for n in range(7)
        ]
        for entry in entries:
            run(self.audit.append(entry))
        newest_first = [entry.id for entry in reversed(entries)]
        logins = [entry.id for entry in reversed(entries) if entry.action == "auth.login"]
        assert [e.id for e in run(self.audit.list("auth.login", None, 10)).items] == logins
        assert run(self.audit.list("user.created", None, 10)).items == []
        for limit in (1, 2, 3, 7, 8):
            every = all_pages(run, lambda cursor, size: self.audit.list(None, cursor, size), limit)
            assert every == newest_first
            only = all_pages(
                run, lambda cursor, size: self.audit.list("auth.login", cursor, size), limit
            )
            assert only == logins

    def test_a_stored_audit_entry_cannot_be_replaced(self, run):
        """Appending an entry with the id of a stored one raises Conflict and leaves the
        stored entry as it was."""
        entry = self._entry("auth.login", T0)
        run(self.audit.append(entry))
        forged = AuditEntry(entry.id, "auth.logout", "system", None, at=T0 + HOUR)
        with pytest.raises(Conflict):
            run(self.audit.append(forged))
        assert run(self.audit.list(None, None, 10)).items == [entry]
