#!/usr/bin/env python3
"""Generates cases.json: each command string with what Python's
shlex.split (POSIX mode, as MaestroNG splits command and check strings)
makes of it, or its error. Run it with python3 from this directory; the
Go test reads cases.json and needs no Python."""
import json
import shlex

CASES = [
    "",
    " ",
    "a",
    "a b  c",
    "  leading and trailing  ",
    "tabs\tand\nnewlines\r\nhere",
    "sh -c 'echo hello'",
    'sh -c "echo hello"',
    r'sh -c "echo \$HOME and \`date\`"',
    r'sh -c "echo \"quoted\" and \\ backslash"',
    r'echo \$HOME',
    r'echo \"',
    r"echo \'",
    r'echo \\',
    r'echo a\ b',
    r'echo "a\ b"',
    r"echo 'a\ b'",
    r"echo 'it'\''s'",
    r'echo "it'"'"'s"',
    "''",
    '""',
    "a '' b",
    'a "" b',
    "a''b",
    'a""b',
    "'a'\"b\"c",
    "x=1 y='2 3' z=\"4 5\"",
    "--opt=\"a b\" --other='c d'",
    r'"\n\t"',
    r"'\n\t'",
    r'\n\t',
    r'"\a\b\c"',
    r'"\\\\"',
    r'"\\\""',
    r'a\\b',
    r'a\\\\b',
    "echo $HOME ${VAR:-default} $(date) `date`",
    "echo # not a comment",
    "echo a#b",
    "cmd ; other && third || fourth | pipe > out < in &",
    "python -c 'import sys; print(sys.argv)' x y",
    "java -Xmx512m -Dfoo=bar -jar /app/app.jar --spring.profiles.active=prod",
    "/bin/sh -c \"exec nginx -g 'daemon off;'\"",
    "sh -c 'trap \"\" TERM; sleep 10'",
    "bash -c \"echo \\\"nested \\\\\\\"deep\\\\\\\" quotes\\\"\"",
    "redis-server --save '' --appendonly no",
    "curl -fsS http://localhost:8080/health || exit 1",
    "test -f /tmp/ready",
    "étoile naïve ßtraße ünïcödé",
    "emoji 🚀 'in quotes 🚀'",
    "a\u00a0b",
    "trailing\\ ",
    "mixed'single'\"double\"plain",
    r'"a\'b"',
    r"'a\"b'",
    r'"\$"',
    r'"\`"',
    r'"\\$"',
    "\"multi\nline\"",
    "'multi\nline'",
    "a\\\nb",
    "\"a\\\nb\"",
    "'unterminated",
    '"unterminated',
    "trailing backslash\\",
    '"escape at end\\',
    "ok 'then unterminated",
    "--flag=' spaced '",
    "k8s.io/x=\"y z\"",
    "* ? [a-z] ~ ! %",
    "(sub shell) {brace}",
    "a=b c=d exec \"$@\"",
    "'$HOME' \"$HOME\" $HOME",
]


def main():
    out = []
    for s in CASES:
        try:
            out.append({"in": s, "out": shlex.split(s)})
        except ValueError as e:
            out.append({"in": s, "error": str(e)})
    with open("cases.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
