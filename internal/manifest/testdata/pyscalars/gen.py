#!/usr/bin/env python3
"""Generates cases.json: each plain YAML scalar as an env value, with what
a container gets under MaestroNG: str() of what PyYAML (YAML 1.1) reads,
as docker-py formats the environment. Run it with python3 from this
directory; the Go test reads cases.json and needs no Python."""
import json
import yaml

CASES = [
    "hello", "yes", "no", "on", "off", "true", "False", "TRUE", "y", "n",
    "0", "42", "-17", "+5", "007", "0x1f", "0o17", "0b101", "1_000", "1:30",
    "3.14", "1.0", "-0.5", ".5", "1e3", "1e+3", "1.5e+3", "1.0e-5", "1e20",
    "1.0e+20", ".inf", "-.inf", ".nan", "1_000.5", "10.",
    "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5",
    "2001-12-15T02:59:43.1Z", "2001-12-15 2:59:43.10", "2002-12-14T00:00:00",
    "2002-12-14 00:00:00.000", "2001-12-14 21:59:43.123456789+01:30",
    "2001-12-14T21:59:43-00:00", "2001-1-2 3:04:05", "2001-12-14T21:59:43+5",
    "2001-12-14 21:59", "2001-12-1", "20011214", "12:30:45",
    "~", "null", "Null", "NULL", "", "'quoted'", '"2001-12-14 21:59:43.10 -5"',
    "'yes'", "'1e3'", "text with spaces", "a:b",
]


def main():
    out = []
    for text in CASES:
        v = yaml.safe_load("v: " + text)["v"]
        out.append({"yaml": text, "env": None if v is None else "{}".format(v)})
    with open("cases.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
