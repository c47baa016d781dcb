"""Write schemas/config.schema.json from the code that parses the config (tokenmeter.config_schema).

    python tools/gen_schemas.py          # rewrite the file
    python tools/gen_schemas.py --check  # exit 1 if it is out of date

report.schema.json and budget.schema.json are written by hand (they describe documents whose
shape is the contract); tests/test_schemas.py validates real output against all three.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tokenmeter.config_schema import config_schema

TARGET = Path(__file__).resolve().parent.parent / "schemas" / "config.schema.json"


def render() -> str:
    """The file's text: sorted by the code's own order, two-space indents, a final newline."""
    return json.dumps(config_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python tools/gen_schemas.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
