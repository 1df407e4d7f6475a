#!/usr/bin/env python3
"""Renders manifest.yml (MaestroNG 0.8.3's docs/examples/zookeeper+kafka.yaml)
as MaestroNG's loader does (jinja2.Environment, a FileSystemLoader on this
directory, render(env=...)) into jinja2-rendered.yml, for the Go reference
test. Run it with python3 (Debian's python3-jinja2) from this directory."""
import jinja2

env = jinja2.Environment(loader=jinja2.FileSystemLoader("."), auto_reload=False)
with open("jinja2-rendered.yml", "w", encoding="utf-8") as f:
    f.write(env.get_template("manifest.yml").render(env={}))
