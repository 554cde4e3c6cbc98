#!/usr/bin/env bash
# poolcli in folders and shell pipes. Run from the repository root after `pip install .`;
# everything is written under a temporary folder, which is printed at the end.
set -euo pipefail
work=$(mktemp -d)
mkdir -p "$work/photos/holiday"
cp examples/coffee.png "$work/photos/a.png"
cp examples/coffee.png "$work/photos/holiday/b.png"

# A folder, sub-folders included, mirrored under small/; two files at a time.
poolcli avg "$work/photos" -r -k 2 -o "$work/small" -j 2 -q

# A pipe: max-pool, then average, then ask what came out.
poolcli max - -k 2 -o - < examples/coffee.png | poolcli avg - -k 2 -o - | poolcli info -

# An image in, its pooled (H, W, C) array out, into a second process that pools it again
# over height and width (a .npy is pooled over its last two axes unless --axes says).
poolcli max examples/coffee.png -k 2 -o - --format npy \
    | poolcli run 'median:k=3,s=1,p=1 | max:k=2' - --axes 0,1 -o "$work/coffee_small.npy"
poolcli info "$work/coffee_small.npy"

# A pipeline file, and a JSON report for scripts (jq-friendly).
poolcli run --pipeline-file examples/pipeline.toml examples/hubble_deep_field.npy \
    -o "$work/hubble_small.npy" --report json --report-file "$work/report.json" -q
python -c "import json, sys; d = json.load(open(sys.argv[1])); \
print(d['files'][0]['input_shape'], '->', d['files'][0]['output_shape'])" "$work/report.json"

echo "outputs in $work"
