"""Hot reload of the policy files: on change (polled) or SIGHUP, the whole set is loaded and checked first.

A set that does not load (YAML, a field, two policies bound to the same model), that changes how the index is
built (`global.ngram_words`, `global.typo_min_chars`: a restart applies those) or that drops a policy registered
entries name is refused: the running set stays, the log says why, and so does /healthz until a valid set loads.
A valid set applies from the next request on; requests under way finish with the set they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from guard.errors import PolicyError
from guard.policy import PolicySet

log = logging.getLogger("guard.policy")

INDEX_SHAPING = ("ngram_words", "typo_min_chars")  # read when the index is built: only a restart applies them


class PolicyWatcher:
    def __init__(
        self,
        policies: PolicySet,
        default_file: Path,
        entry_policies: Callable[[], Awaitable[Iterable[str | None]]],
        *,
        interval_s: float = 2.0,
        on_reload: Callable[[str], None] | None = None,
    ) -> None:
        """`entry_policies`: the policy names registered entries use; `on_reload(outcome)`: a metric."""
        self.policies = policies
        self.default_file = default_file
        self.interval_s = interval_s
        self._entry_policies = entry_policies
        self._on_reload = on_reload or (lambda outcome: None)
        self._signature = self.signature()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[bool]] = set()
        self.loads = 1  # sets applied, the one at start included
        self.loaded_at = time.time()
        self.error: str | None = None  # why the last reload was refused, until one succeeds

    def signature(self) -> tuple[tuple[str, int, int, int], ...]:
        """What a change of any policy file changes (name, inode, size, modification time)."""
        out = []
        for path in sorted(self.default_file.parent.glob("*.yaml")):
            with contextlib.suppress(OSError):
                st = path.stat()
                out.append((path.name, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def status(self) -> dict[str, Any]:
        return {
            "ok": self.error is None,
            "error": self.error,
            "loads": self.loads,
            "loaded_seconds_ago": round(time.time() - self.loaded_at, 3),
            "policies": self.policies.names(),
            "bindings": self.policies.bindings(),
        }

    async def reload(self, reason: str) -> bool:
        """Load, check and apply the policy files; False (and the running set kept) when they are refused."""
        async with self._lock:
            self._signature = self.signature()
            try:
                new = await asyncio.to_thread(PolicySet.load, self.default_file)
                await self._check(new)
            except PolicyError as exc:
                self.error = str(exc)
                self._on_reload("refused")
                log.error(
                    "policy reload refused: the running policies stay", extra={"reason": reason, "error": self.error}
                )
                return False
            self.policies.replace(new)
            self.loads += 1
            self.loaded_at = time.time()
            self.error = None
            self._on_reload("applied")
            log.info("policies reloaded", extra={"reason": reason, "policies": new.names(), "bindings": new.bindings()})
            return True

    async def _check(self, new: PolicySet) -> None:
        for name in INDEX_SHAPING:
            old_value, new_value = getattr(self.policies.settings, name), getattr(new.settings, name)
            if old_value != new_value:
                raise PolicyError(
                    f"global.{name} changed ({old_value} -> {new_value}): it shapes the index, restart the guard to "
                    "apply it"
                )
        missing = sorted({p for p in await self._entry_policies() if p is not None and p not in new})
        if missing:
            raise PolicyError(f"policies named by registered entries are missing: {', '.join(missing)}")

    def start(self) -> None:
        """Poll for changes (when an interval is set) and reload on SIGHUP (when the loop runs the main thread)."""
        if self.interval_s > 0:
            self._task = asyncio.create_task(self._poll())
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.trigger, "SIGHUP")

    def trigger(self, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(reason))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            if self.signature() != self._signature:
                try:
                    await self.reload("changed")
                except Exception as exc:  # e.g. the index could not list entries: keep polling, retry next change
                    log.error("policy reload failed", extra={"error": type(exc).__name__})

    async def stop(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        for task in [self._task, *self._pending]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
