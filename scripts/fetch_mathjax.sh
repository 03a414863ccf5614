#!/usr/bin/env bash
# The book serves MathJax itself (offline-first): fetch the pinned npm package and keep its one combined file,
# tex-svg-full.js (TeX input with every extension, SVG output: no font files, no later downloads), in
# .cache/mathjax/static/mathjax/, the folder _config.yml hands to Sphinx as a static path.
# Nothing is vendored in git; run this once before `jupyter-book build .` (.ci/run does).
set -euo pipefail
cd "$(dirname "$0")/.."
version=3.2.2
dest=.cache/mathjax/static/mathjax
if [[ -f $dest/tex-svg-full.js && $(cat "$dest/VERSION" 2>/dev/null) == "$version" ]]; then
  exit 0
fi
command -v npm >/dev/null || { echo "fetch_mathjax: npm is needed to fetch mathjax@$version (Node.js's package manager)" >&2; exit 1; }
work=.cache/mathjax/npm
npm install --silent --no-audit --no-fund --no-save --prefix "$work" "mathjax@$version"
mkdir -p "$dest.tmp"
cp "$work/node_modules/mathjax/es5/tex-svg-full.js" "$work/node_modules/mathjax/LICENSE" "$dest.tmp/"
echo "$version" > "$dest.tmp/VERSION"
rm -rf "$dest" && mv "$dest.tmp" "$dest"
echo "fetch_mathjax: mathjax $version in $dest"
