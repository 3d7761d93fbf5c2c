"""Entry point of one SQL worker process: ``python -m t2s_fast.sql.worker '<limits json>'``.

A separate module (not ``python -m t2s_fast.sql.executor``) so that the results it pickles name
``t2s_fast.sql.executor.ExecResult``, a class the parent can unpickle, rather than ``__main__.ExecResult``.
"""

import json
import sys

from t2s_fast.sql.executor import _worker_loop

if __name__ == "__main__":
    _worker_loop(json.loads(sys.argv[1]))
