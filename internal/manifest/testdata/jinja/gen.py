#!/usr/bin/env python3
"""Generates cases.json: each template with what Python's Jinja2 renders
of it as MaestroNG does (jinja2.Environment with default settings,
rendered with env, the process environment, as its one variable; here a
fixed env). Run it with python3 (Debian's python3-jinja2) from this
directory; the Go test reads cases.json and needs no Python."""
import json
import os
import tempfile

import jinja2

ENV = {"HOME": "/home/deploy", "REGION": "eu-west-1", "REPLICAS": "3", "EMPTY": ""}

CASES = [
    # Text, comments, whitespace control.
    "plain text", "a {# comment #} b", "{{ 'x' }}", "  {{- 'x' -}}  ", "a\n{%- if true %}\nb{% endif %}",
    "{% if true -%}\n  x\n{%- endif %}", "{% raw %}{{ kept }}{% endraw %}",
    # Literals and arithmetic.
    "{{ 1 }}", "{{ -5 }}", "{{ 1 + 2 }}", "{{ 7 - 10 }}", "{{ 3 * 4 }}", "{{ 10 / 4 }}", "{{ 10 // 4 }}",
    "{{ 7 % 3 }}", "{{ 1.5 }}", "{{ 0.1 + 0.2 }}", "{{ 2 * 1.5 }}", "{{ (1 + 2) * 3 }}", "{{ -(3) }}",
    "{{ 'a' ~ 'b' ~ 1 }}", "{{ 'x' * 3 }}", "{{ 'abc' + 'def' }}", "{{ [1, 2] + [3] }}",
    "{{ true }}", "{{ false }}", "{{ True }}", "{{ not true }}", "{{ true and false }}", "{{ true or false }}",
    "{{ 1 < 2 }}", "{{ 2 <= 2 }}", "{{ 'a' == 'a' }}", "{{ 1 != 2 }}", "{{ 1 == 1.0 }}",
    "{{ 'a' in 'abc' }}", "{{ 2 in [1, 2] }}", "{{ 'k' in {'k': 1} }}", "{{ 3 not in [1, 2] }}",
    "{{ 'yes' if true else 'no' }}", "{{ 'yes' if false else 'no' }}",
    # Lists and dicts.
    "{{ [1, 2, 3] }}", "{{ ['a', 'b'] }}", "{{ [] }}", "{{ {'a': 1} }}", "{{ {'a': 'x', 'b': [1]} }}", "{{ {} }}",
    "{{ [1, 2, 3][0] }}", "{{ [1, 2, 3][-1] }}", "{{ [1, 2, 3][1:] }}", "{{ [1, 2, 3][:2] }}", "{{ 'abcdef'[2:4] }}",
    "{{ {'a': 1}['a'] }}", "{{ {'a': 1}.a }}", "{{ {'a': {'b': 2}}.a.b }}",
    "{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% endfor %}",
    "{% for k in {'b': 1, 'a': 2} %}{{ k }};{% endfor %}",
    "{{ {'b': 1, 'a': 2}.keys()|list }}", "{{ {'b': 1, 'a': 2}.values()|list }}",
    "{{ {'a': 1}.get('a') }}", "{{ {'a': 1}.get('b', 'def') }}",
    # Mutation, as MaestroNG's examples do it.
    "{% set xs = [] %}{% for i in [1, 2, 3] %}{% set _ = xs.append(i) %}{% endfor %}{{ xs|join(',') }}",
    "{% set ids = [] %}{% for name, id in [('zk-1', 1), ('zk-2', 2)] %}{% set DO = ids.append('{}:{}'.format(name, id)) %}{% endfor %}{{ ids|join(',') }}",
    "{% set xs = [1] %}{% set _ = xs.extend([2, 3]) %}{{ xs|join(',') }}",
    "{% set xs = [1, 3] %}{% set _ = xs.insert(1, 2) %}{{ xs|join(',') }}",
    "{% set xs = [1, 2, 3] %}{{ xs.pop() }} {{ xs|join(',') }}",
    "{% set xs = [1, 2, 3] %}{{ xs.pop(0) }} {{ xs|join(',') }}",
    "{% set xs = ['a', 'b', 'a'] %}{% set _ = xs.remove('a') %}{{ xs|join(',') }}",
    "{{ ['a', 'b'].index('b') }}", "{{ [1, 2, 1].count(1) }}",
    "{% set d = {} %}{% set _ = d.update({'a': 1}) %}{{ d.a }}",
    "{% set d = {'b': 1} %}{% set _ = d.update({'a': 2, 'b': 3}) %}{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}",
    "{% set d = {'x': 1} %}{% for i in [1, 2] %}{% set _ = d.update({'k' ~ i: i}) %}{% endfor %}{{ d|length }}",
    "{% set ns = namespace(n=0) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
    # Scoping.
    "{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}",
    "{% set x = 'out' %}{% with x = 'in' %}{{ x }}{% endwith %}{{ x }}",
    "{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}",
    # Loops.
    "{% for i in [1, 2, 3] %}{{ i }}{% endfor %}", "{% for i in range(3) %}{{ i }}{% endfor %}",
    "{% for i in range(1, 4) %}{{ i }}{% endfor %}", "{% for i in range(0, 10, 3) %}{{ i }},{% endfor %}",
    "{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}",
    "{% for i in [5, 6] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }} {% endfor %}",
    "{% for i in [5, 6, 7] %}{{ loop.length }}{{ loop.revindex }}{% endfor %}",
    "{% for i in [] %}x{% else %}empty{% endfor %}",
    "{% for i in [1, 2, 3, 4] if i % 2 == 0 %}{{ i }}{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }};{% endfor %}",
    "{% for i in [1, 2] %}{% for j in ['a', 'b'] %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
    "{% for i in [1, 2, 3] %}{{ loop.cycle('odd', 'even') }} {% endfor %}",
    "{% for i in 'abc' %}{{ i }}-{% endfor %}",
    # Conditionals.
    "{% if 1 > 2 %}a{% elif 2 > 1 %}b{% else %}c{% endif %}", "{% if [] %}t{% else %}f{% endif %}",
    "{% if '' %}t{% else %}f{% endif %}", "{% if 0 %}t{% else %}f{% endif %}", "{% if 'x' %}t{% endif %}",
    # Tests.
    "{{ x is defined }}", "{{ x is undefined }}", "{{ env.HOME is defined }}", "{{ env.NOPE is defined }}",
    "{{ 4 is even }}", "{{ 3 is odd }}", "{{ 6 is divisibleby 3 }}", "{{ 'a' is string }}", "{{ 1 is number }}",
    "{{ [1] is iterable }}", "{{ none is none }}", "{{ {} is mapping }}", "{{ 'abc' is lower }}", "{{ 'ABC' is upper }}",
    "{{ 1 is sameas 1 }}", "{{ 2 is eq 2 }}",
    # The process environment.
    "{{ env.HOME }}", "{{ env['REGION'] }}", "{{ env.get('REGION') }}", "{{ env.get('NOPE', 'fallback') }}",
    "{{ env.NOPE|default('dflt') }}", "{{ env.EMPTY|default('dflt') }}", "{{ env.EMPTY|default('dflt', true) }}",
    "{{ env.REPLICAS|int + 1 }}", "{{ env.REGION|upper }}", "{{ env.REGION.split('-')[0] }}",
    "{% if env.REGION.startswith('eu') %}europe{% endif %}",
    # Filters.
    "{{ 'hello'|upper }}", "{{ 'HeLLo'|lower }}", "{{ 'hello world'|title }}", "{{ 'hello'|capitalize }}",
    "{{ '  x  '|trim }}", "{{ [1, 2, 3]|join(',') }}", "{{ [1, 2, 3]|join }}", "{{ 'abc'|length }}", "{{ [1, 2]|length }}",
    "{{ [1, 2]|count }}", "{{ [3, 1, 2]|sort|join }}", "{{ [3, 1, 2]|sort(reverse=true)|join }}", "{{ ['b', 'A', 'c']|sort|join }}",
    "{{ [1, 2, 3]|first }}", "{{ [1, 2, 3]|last }}", "{{ [1, 2, 3]|reverse|join }}", "{{ 'abc'|reverse }}",
    "{{ [1, 2, 3]|sum }}", "{{ [1, 5, 3]|max }}", "{{ [4, 2, 8]|min }}", "{{ [1, 1, 2]|unique|join }}",
    "{{ '42'|int }}", "{{ 'x'|int }}", "{{ '3.5'|float }}", "{{ 3|float }}", "{{ 3.7|int }}", "{{ 42|string }}",
    "{{ 'a-b'|replace('-', '_') }}", "{{ 'aaa'|replace('a', 'b', 2) }}", "{{ '%s=%s'|format('a', 1) }}",
"{% for k, v in {'b': 1, 'a': 2}|dictsort %}{{ k }}{{ v }}{% endfor %}",
    "{% for k, v in {'b': 1, 'A': 2}|dictsort(true) %}{{ k }}{% endfor %}",
    "{% for k, v in {'x': 3, 'y': 1}|dictsort(by='value') %}{{ k }}{% endfor %}",
    "{{ [{'n': 'b'}, {'n': 'a'}]|map(attribute='n')|join }}", "{{ [1, 2, 3]|map('string')|join('-') }}",
    "{{ [{'n': 1, 'on': true}, {'n': 2, 'on': false}]|selectattr('on')|map(attribute='n')|join }}",
    "{{ [{'n': 1, 'on': true}, {'n': 2, 'on': false}]|rejectattr('on')|map(attribute='n')|join }}",
    "{{ [1, 2, 3, 4]|select('even')|join }}", "{{ [1, 2, 3, 4]|reject('even')|join }}",
    "{{ [1, 2, 3, 4, 5]|batch(2)|list|length }}", "{{ 'a b'|wordcount }}", "{{ 'abc'|center(7) }}",
    "{{ 'line1\\nline2'|indent(2) }}", "{{ 'hello'|truncate(3, true, '') }}", "{{ [1, 2]|list }}",
    "{{ 'abc'|list|join(',') }}", "{{ 1234567|filesizeformat }}", "{{ -3|abs }}",
    "{{ 2.567|round(1) }}", "{{ 2.5|round }}", "{{ 'x'|e }}", "{{ '<b>'|e }}", "{{ [3, 1]|sort|first }}",
    "{{ 'a,b,,c'.split(',')|length }}", "{{ [0, 1, '', 'x', none]|select|list|length }}",
    # String methods.
    "{{ 'Hello'.upper() }}", "{{ 'Hello'.lower() }}", "{{ ' x '.strip() }}", "{{ 'xxaxx'.strip('x') }}",
    "{{ ' x '.lstrip() }}|", "{{ ' x '.rstrip() }}|", "{{ 'a,b,c'.split(',') }}", "{{ 'a b  c'.split() }}",
    "{{ 'a,b,c'.split(',', 1) }}", "{{ '  a b '.split() }}", "{{ 'abc'.startswith('a') }}", "{{ 'abc'.endswith('bc') }}",
    "{{ 'a.b.c'.replace('.', '-') }}", "{{ 'a.b.c'.replace('.', '-', 1) }}", "{{ 'abc'.find('c') }}",
    "{{ 'abc'.count('b') }}", "{{ 'x'.join(['a', 'b']) }}", "{{ 'hello world'.title() }}", "{{ 'abc'.capitalize() }}",
    "{{ '{}-{}'.format('a', 'b') }}", "{{ '{0}{1}{0}'.format('a', 'b') }}", "{{ '{name}'.format(name='n') }}",
    "{{ '42'.isdigit() }}", "{{ 'ab'.isalpha() }}", "{{ 'a'.zfill(3) }}", "{{ 'ab'.center(6, '*') }}",
    "{{ 'a-b-c'.rsplit('-', 1) }}", "{{ 'AbC'.swapcase() }}", "{{ 'a\\nb'.splitlines() }}",
    # Macros, call, filter blocks.
    "{% macro hi(name) %}hi {{ name }}{% endmacro %}{{ hi('bob') }}",
    "{% macro p(a, b=2) %}{{ a }}{{ b }}{% endmacro %}{{ p(1) }}{{ p(1, 3) }}{{ p(a=5, b=6) }}",
    "{% macro w() %}[{{ caller() }}]{% endmacro %}{% call w() %}inner{% endcall %}",
    "{% filter upper %}shout{% endfilter %}",
    "{% set block %}captured{% endset %}{{ block }}",
    # Ports and names as MaestroNG files compute them.
    "{% for i in range(3) %}zk-{{ i + 1 }}:{{ 2181 + i }} {% endfor %}",
    "{% set base = 8000 %}{% for n in ['a', 'b'] %}{{ n }}: {{ base + loop.index0 }}\n{% endfor %}",
    "{% set ships = ['s1', 's2'] %}{% for s in ships %}{{ s }}-{{ loop.index }}{% if not loop.last %},{% endif %}{% endfor %}",
    "{{ ['a', 'b']|join(':') ~ '/' ~ 'x' }}", "{{ 'web-%02d'|format(3) }}",
    "{% for s in ['a', 'b'] %}{{ s|upper }}{{ '_' if not loop.last }}{% endfor %}",
    "{% set x = {'ship': [('zk-node-1', 1), ('zk-node-2', 2)]} %}{% for ship, details in x.items() %}{% for n, i in details %}{{ ship }}/{{ n }}/{{ i }};{% endfor %}{% endfor %}",
    # Python's operators: % formatting, integer powers, big integers.
    "{{ '%s-%s' % ('a', 'b') }}", "{{ '%s' % 'x' }}", "{{ '%d items' % 3 }}", "{{ '%05.1f' % 3.14159 }}",
    "{{ '%(name)s:%(port)d' % {'name': 'db', 'port': 5432} }}", "{{ '%s' % [1, 2] }}", "{{ '%s' % (none,) }}",
    "{{ '%r' % 'q' }}", "{{ '%x/%o/%X' % (255, 8, 255) }}", "{{ '%-4s|' % 'a' }}", "{{ '%%' % () }}",
    "{{ 'zk-%d:%d' % (1, 2181 + 1) }}", "{{ '%s' % ('a', 'b') }}", "{{ '%d' % 'x' }}",
    "{{ 7 % 3 }}", "{{ -7 % 3 }}", "{{ 7 % -3 }}", "{{ 7.5 % 2 }}", "{{ -7.5 % 2 }}", "{{ 1 % 0 }}",
    "{{ 7 // 2 }}", "{{ -7 // 2 }}", "{{ 7.0 // 2 }}", "{{ 1 // 0 }}", "{{ 1 / 0 }}",
    "{{ 2 ** 3 }}", "{{ 2 ** -1 }}", "{{ 2.0 ** 2 }}", "{{ 4 ** 0.5 }}", "{{ 2 ** 3 ** 2 }}", "{{ -2 ** 2 }}",
    "{{ 2 ** 64 }}", "{{ 2 ** 100 // 3 }}", "{{ 123456789012345678901234567890 }}",
    "{{ 9223372036854775807 + 1 }}", "{{ 9223372036854775807 * 3 }}", "{{ -9223372036854775807 - 10 }}",
    "{{ 10 ** 20 % 7 }}", "{{ 10 ** 20 > 1 }}", "{{ (10 ** 20) | string | length }}",
    # None, undefined and truthiness.
    "{{ none }}", "{{ None }}", "{{ 'ab' ~ none }}", "{{ none ~ 'x' }}", "{{ none|default('d') }}",
    "{{ none|default('d', true) }}", "{{ undefined_name|default('d') }}", "{{ [none, 1] }}", "{{ {'a': none} }}",
    "{{ none is none }}", "{{ undefined_name is none }}", "{{ none is defined }}", "{{ none == none }}",
    "{{ none|string }}", "{{ {'a': 1}.get('b') }}", "{{ {'a': 1}.get('b') is none }}",
    "{% if none %}t{% else %}f{% endif %}", "{{ 'set' if none is none else 'unset' }}",
    "{% if {} %}t{% else %}f{% endif %}", "{% if {'a': 1} %}t{% else %}f{% endif %}", "{{ not {} }}",
    "{{ {} or 'empty' }}", "{{ [] or 'empty' }}", "{{ '' or 'empty' }}", "{{ 0 or 'zero' }}", "{{ 0.0 or 'zero' }}",
    "{{ {}|length }}",
    # Tuples.
    "{{ (1, 2) }}", "{{ (1,) }}", "{{ () }}", "{{ ('a', 1, none) }}", "{{ [(1, 2), (3, 4)] }}",
    "{{ (1, 2)|length }}", "{{ (1, 2)[1] }}", "{{ 2 in (1, 2) }}", "{{ (1, 2)|list }}", "{{ (3, 1)|sort }}",
    "{{ {'b': 1, 'a': 2}|dictsort }}", "{{ {'b': 1, 'a': 2}.items()|list }}", "{{ {'a': (1, 2)} }}",
    "{% set t = ('x', 'y') %}{{ t|join('.') }}", "{% for a, b in [('k', (1, 2))] %}{{ a }}{{ b }}{% endfor %}",
    # str.rsplit without a separator splits from the right.
    "{{ 'a b c d'.rsplit(None, 1) }}", "{{ ' a  b c '.rsplit(None, 2) }}", "{{ 'a b c'.rsplit() }}",
    # Methods that return None, undefined macro arguments, repetition, repr.
    "{{ [1].append(2) }}", "{% set xs = [] %}{{ xs.append(1) }}{{ xs }}", "{% set d = {} %}{{ d.update({'a': 1}) }}{{ d }}",
    "{{ {'a': 1}.pop('z') }}", "{{ {'a': 1}.pop('z', 0) }}", "{{ nil }}", "{{ {'a': 1}.setdefault('b') }}",
    "{% macro m(a) %}[{{ a }}]{% endmacro %}{{ m() }}{{ m(none) }}{{ m(a is defined) }}",
    "{% macro m(a) %}{{ a is defined }}{% endmacro %}{{ m() }}",
    "{{ [0] * 3 }}", "{{ 3 * 'ab' }}", "{{ 'a' * 0 }}", "{{ -1 * 'a' }}", "{{ [1, 2] * 2 }}",
    "{{ '%g' % 3.14159265 }}", "{{ '%#o' % 8 }}", "{{ '%+d' % 5 }}", "{{ '% d' % 5 }}", "{{ '%(a)s %(a)s' % {'a': 1} }}",
    "{{ '%s' % {'a': 1} }}", "{{ '%e' % 12345.678 }}", "{{ '%.2f%%' % 12.345 }}", "{{ '%5s|%-5d|' % ('ab', 7) }}",
    "{{ '%c%c' % ('a', 98) }}", "{{ '%d' % 3.9 }}", "{{ '%s' % true }}", "{{ '%d' % true }}", "{{ '%s and %s' % ('a',) }}",
    "{{ 'web-%(n)02d' % {'n': 3} }}", "{{ '%x' % 2 ** 70 }}", "{{ '%s' % (2 ** 70) }}",
    "{{ {'k': 'v'}|dictsort|first }}", "{{ (1, \"it's\") }}", "{{ ['a\\nb'] }}", "{{ [\"q'\"] }}",
    "{{ 2 ** 0.5 }}", "{{ 10 ** -2 }}", "{{ 0 ** 0 }}", "{{ (-8) % 3 }}", "{{ 5 // -2 }}", "{{ 5.5 // 2 }}",
    "{{ 2 ** 62 + 2 ** 62 }}", "{{ 2 ** 63 - 1 }}", "{{ 2 ** 63 == 9223372036854775808 }}", "{{ [2 ** 64] }}",
    "{{ 10 ** 20 / 10 ** 19 }}", "{{ 2 ** 64 + 0.5 }}", "{{ -(2 ** 64) }}", "{{ 3 - 2 ** 64 < 0 }}",
    # extend inside a loop; MaestroNG's documented use of env (docs/environment.rst).
    "{% set xs = [] %}{% for i in [1, 2] %}{% set _ = xs.extend([i, i * 10]) %}{% endfor %}{{ xs }}",
    "key: {{ env.HOME }}/.ssh/id_dsa",
    # Operators on operands Python refuses: TypeError, and Jinja2's
    # Undefined in arithmetic: UndefinedError. Concatenation with ~ accepts
    # anything.
    "{{ 'a' - 1 }}", "{{ [1] + 'a' }}", "{{ 'a' + 1 }}", "{{ 1 + 'a' }}", "{{ {} + 1 }}", "{{ none + 1 }}",
    "{{ [1] + (2,) }}", "{{ (1,) + (2,) }}", "{{ env.REPLICAS + 1 }}", "{{ env.NOPE + 1 }}", "{{ nope * 2 }}",
    "{{ env.NOPE ~ 'x' }}", "{{ true + 1 }}", "{{ 'ab' * true }}", "{{ [1] * 'a' }}", "{{ 'a' / 2 }}",
]

# Templates with files beside them, loaded as MaestroNG loads them: a
# FileSystemLoader on the manifest's directory (include, import, extends).
FILE_CASES = [
    ("{% include 'ships.yml' %}services: {}", {"ships.yml": "ships:\n  s1: {ip: 10.0.0.1}\n"}),
    ("{% for i in [1, 2] %}{% include 'inst.j2' %}{% endfor %}", {"inst.j2": "web-{{ i }}: {ship: s{{ i }}}\n"}),
    ("{% import 'm.j2' as m %}{{ m.port('zk', 1) }}", {"m.j2": "{% macro port(n, i) %}{{ n }}-{{ i }}: {{ 2180 + i }}{% endmacro %}"}),
    ("{% from 'm.j2' import ids %}{{ ids(['a', 'b']) }}",
     {"m.j2": "{% macro ids(names) %}{% set out = [] %}{% for n in names %}{% set _ = out.append(n ~ ':' ~ loop.index) %}{% endfor %}{{ out|join(',') }}{% endmacro %}"}),
    ("{% extends 'base.j2' %}{% block services %}  web: {image: web}{% endblock %}",
     {"base.j2": "name: x\nservices:\n{% block services %}{% endblock %}\n"}),
    ("{% set region = env.REGION %}{% include 'region.j2' %}", {"region.j2": "region: {{ region }}"}),
    ("{% include 'sub/a.j2' %}", {"sub/a.j2": "a {% include 'sub/b.j2' %}", "sub/b.j2": "b"}),
    ("{% include 'nope.j2' %}", {}),
    ("{% include 'bad.j2' %}", {"bad.j2": "{{ 1 // 0 }}"}),
]

def main():
    env = jinja2.Environment()
    out = []
    for src in CASES:
        try:
            out.append({"template": src, "output": env.from_string(src).render(env=ENV)})
        except Exception as e:  # noqa: BLE001: any failure is a case
            out.append({"template": src, "error": type(e).__name__})
    for src, files in FILE_CASES:
        with tempfile.TemporaryDirectory() as tmp:
            for name, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(tmp, name)), exist_ok=True)
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                    f.write(text)
            fenv = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp), auto_reload=False)
            try:
                out.append({"template": src, "files": files, "output": fenv.from_string(src).render(env=ENV)})
            except Exception as e:  # noqa: BLE001: any failure is a case
                out.append({"template": src, "files": files, "error": type(e).__name__})
    with open("cases.json", "w", encoding="utf-8") as f:
        json.dump({"env": ENV, "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
