"""Old flag names that still work for a while and say which name replaced them."""

from __future__ import annotations

import argparse
import sys


class DeprecatedAlias(argparse.Action):
    """An old flag: stores into the new flag's ``dest`` and says which flag to use instead."""

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"note: {option_string} is deprecated; use --{self.dest.replace('_', '-')}",
              file=sys.stderr)
        setattr(namespace, self.dest, values)
