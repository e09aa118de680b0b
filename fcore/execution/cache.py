"""A bounded cache: the executors' caches of compiled and renamed programs keep the most
recently used entries only, so a long session that builds many computations does not hold
every one of them forever."""

from __future__ import annotations

import collections


class LRU(collections.OrderedDict):
    """A dict of at most `size` entries; reading or writing an entry makes it the newest,
    and adding one past the size drops the oldest."""

    def __init__(self, size):
        super().__init__()
        self.size = size

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)
