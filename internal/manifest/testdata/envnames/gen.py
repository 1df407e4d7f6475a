#!/usr/bin/env python3
"""Generates cases.json: each service or instance name with the variable
name part MaestroNG makes of it (entities.py: re.sub(r'[^\\w]', '_',
name).upper(), Python 3). Run it with python3 from this directory; the Go
test reads cases.json and needs no Python."""
import json
import re

CASES = [
    "web", "web-1", "a.b", "a b", "zk_1", "Web-API", "1x", "api-1x", "a--b",
    "straße", "ﬁle", "e\u0301t\u00e9", "café", "naïve", "ǆ", "ŉ", "ﬀ", "ǰ",
    "İstanbul", "ıi", "Ωmega", "ω", "σς", "ß-ß", "x²", "Ⅻ", "½", "٣",
    "日本", "한국", "emoji🚀", "a\u200bb", "tab\tname", "ü.ö", "ÿ", "µ", "ª",
    "ͅ", "ᾳ", "ﬆ", "Ǳ", "ǲ", "a:b", "a@b", "a/b", "mixed-Case.Name_1",
]


def main():
    out = [{"name": n, "env": re.sub(r'[^\w]', '_', n).upper()} for n in CASES]
    with open("cases.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
