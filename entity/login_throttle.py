"""The login throttle: how many failed logins an account and an address may have, and how long
an attempt waits after them.

The policy (the README's security section states it):

- **Per account**, a back-off instead of a lock: the first :attr:`ThrottlePolicy.free_failures`
  failures cost nothing; each one after them makes the next attempt wait twice as long as the
  previous wait, from :attr:`~ThrottlePolicy.first_delay` up to :attr:`~ThrottlePolicy.max_delay`.
  An attempt made while waiting is refused (429) without looking at the password and is not
  counted, so guessing cannot lengthen the wait faster than the wait itself passes. A success
  or an admin's unlock starts the count again.
- **An address the account has logged in from before** (a *known* address, remembered for
  :attr:`~ThrottlePolicy.known_for`) is judged by the failures made from that address alone.
  So an attacker guessing the admin's password from elsewhere slows only the attempts from
  elsewhere; the admin at their usual address is not locked out by someone else's failures.
- **Per address**, a budget of :attr:`~ThrottlePolicy.address_budget` failures per
  :attr:`~ThrottlePolicy.address_window`, whatever the accounts. When it is spent the address
  may still log in to the accounts it is known for, and only the others wait until the oldest
  failure leaves the window. Random e-mails from one address (credential stuffing) are slowed
  to the budget, but the people behind the same proxy or NAT who log in from there as usual
  are never refused because of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from entity.base import utcnow
from entity.security import KEEP_LOGIN_RECORDS, LoginFailureRepository
from entity.user import normalise_email
from exception_layer import TooManyRequests


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 4
    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=15)
    #: how long an account's failures count (longer than the back-off reaches its cap)
    account_window: timedelta = timedelta(hours=24)
    address_budget: int = 20
    address_window: timedelta = timedelta(minutes=15)
    #: how long a successful login makes its address known to the account
    known_for: timedelta = KEEP_LOGIN_RECORDS

    def delay(self, failures: int) -> timedelta:
        """How long an attempt waits after ``failures`` counted failures."""
        if failures <= self.free_failures:
            return timedelta(0)
        doubled = self.first_delay * 2 ** min(failures - self.free_failures - 1, 30)
        return min(doubled, self.max_delay)


@dataclass(frozen=True)
class Lock:
    """A wait that a failure has just started: ``scope`` is ``account`` or ``address``."""

    scope: str
    target: str
    seconds: int


def _wait_message(wait: timedelta) -> str:
    seconds = max(1, int(wait.total_seconds() + 0.999))
    if seconds < 120:
        return f"Too many failed logins; try again in {seconds} seconds."
    return f"Too many failed logins; try again in {seconds // 60 + 1} minutes."


class LoginThrottle:
    """The policy above over the failed-login records (shared by every process)."""

    def __init__(self, failures: LoginFailureRepository, policy: ThrottlePolicy | None = None):
        self.failures = failures
        self.policy = policy or ThrottlePolicy()

    @staticmethod
    def _keys(email: str, address: str | None) -> tuple[str, str, str]:
        email = normalise_email(email or "")
        address = address or "unknown"
        return f"account:{email}", f"address:{address}", f"pair:{email}|{address}"

    def _known(self, pair_key: str, now: datetime) -> bool:
        return self.failures.latest(f"known:{pair_key}", now - self.policy.known_for) is not None

    def _account_wait(self, email: str, address: str | None, now: datetime) -> timedelta:
        account_key, _, pair_key = self._keys(email, address)
        key = pair_key if self._known(pair_key, now) else account_key
        since = now - self.policy.account_window
        unlocked = self.failures.latest(f"unlock:{account_key}", since)
        if unlocked is not None:
            since = unlocked
        count = self.failures.count_since(key, since)
        delay = self.policy.delay(count)
        if not delay:
            return delay
        latest = self.failures.latest(key, since)
        return max(timedelta(0), latest + delay - now) if latest else timedelta(0)

    def _address_wait(self, email: str, address: str | None, now: datetime) -> timedelta:
        _, address_key, pair_key = self._keys(email, address)
        since = now - self.policy.address_window
        if self.failures.count_since(address_key, since) < self.policy.address_budget:
            return timedelta(0)
        if self._known(pair_key, now):
            return timedelta(0)
        oldest = self.failures.oldest_since(address_key, since)
        return oldest + self.policy.address_window - now if oldest else timedelta(0)

    def check(self, email: str, address: str | None) -> None:
        """Refuse an attempt that must wait.

        Raises:
            TooManyRequests: with the wait in its message and ``details["retry_after"]``.
        """
        now = utcnow()
        wait = max(self._account_wait(email, address, now),
                   self._address_wait(email, address, now))
        if wait > timedelta(0):
            raise TooManyRequests(_wait_message(wait),
                                  details={"retry_after": int(wait.total_seconds() + 0.999)})

    def failed(self, email: str, address: str | None) -> list[Lock]:
        """Record a failed attempt; returns the waits it has just started (for the audit)."""
        account_key, address_key, pair_key = self._keys(email, address)
        self.failures.record(account_key, address_key, pair_key)
        now = utcnow()
        locks = []
        wait = self._account_wait(email, address, now)
        if wait > timedelta(0):
            locks.append(Lock("account", normalise_email(email or ""), int(wait.total_seconds())))
        since = now - self.policy.address_window
        if self.failures.count_since(address_key, since) == self.policy.address_budget:
            locks.append(Lock("address", address or "unknown",
                              int(self.policy.address_window.total_seconds())))
        return locks

    def succeeded(self, email: str, address: str | None) -> None:
        """A successful login: the account's count starts again and the address is known."""
        account_key, _, pair_key = self._keys(email, address)
        self.failures.clear(account_key)
        self.failures.clear(pair_key)
        self.failures.clear(f"known:{pair_key}")
        self.failures.record(f"known:{pair_key}", keep=True)

    def unlock(self, email: str) -> bool:
        """End the account's back-off (an admin's action); False if it had none."""
        account_key = self._keys(email, None)[0]
        now = utcnow()
        since = now - self.policy.account_window
        unlocked = self.failures.latest(f"unlock:{account_key}", since)
        had_failures = self.failures.count_since(account_key, unlocked or since) > 0
        self.failures.clear(account_key)
        self.failures.clear(f"unlock:{account_key}")
        self.failures.record(f"unlock:{account_key}")
        return had_failures

    def locked_until(self, email: str) -> datetime | None:
        """When the account's back-off ends for an address it is not known at, or None."""
        now = utcnow()
        wait = self._account_wait(email, None, now)
        return now + wait if wait > timedelta(0) else None
