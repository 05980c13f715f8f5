"""Map the row keys of the second session's reruns (2026-12-06, runs from 10:53 on, made from a second checkout:
the embedded prior's resolved path is part of the key) to the keys the same settings got from the first checkout,
by matching runs of the same experiment, method and overrides (shard aside). Prints the mapping; --apply rewrites
outputs/bench/*/results-shard*.jsonl. Kept as the record of what was done (docs/domain_shift.md)."""
import json, sys, yaml
from pathlib import Path
ROOT = Path(__file__).resolve().parents[3]
CUT = '2026-12-06/10-53'   # runs from /work/runs started at or after this
def canon(over):
    return tuple(sorted(o for o in over if not o.startswith(('benchmark.shard=', 'method=', 'sampler.progress='))))
main, runs = {}, {}
for keys in sorted((ROOT / 'outputs/bench_runs').rglob('keys.json')):
    d = keys.parent
    over = yaml.safe_load((d / '.hydra/overrides.yaml').read_text())
    when = str(d.relative_to(ROOT / 'outputs/bench_runs'))
    for method, key in json.loads(keys.read_text())['keys'].items():
        slot = (canon(over), method)
        (runs if when >= CUT else main).setdefault(slot, set()).add(key)
mapping = {}
for slot, keys in runs.items():
    if slot in main:
        assert len(main[slot]) == 1, (slot, main[slot])
        (target,) = main[slot]
        for k in keys:
            if k != target:
                mapping[k] = target
print(json.dumps(mapping, indent=1))
if '--apply' in sys.argv:
    for f in (ROOT / 'outputs/bench').rglob('results-shard*.jsonl'):
        lines = f.read_text().splitlines()
        new = []
        changed = 0
        for l in lines:
            r = json.loads(l)
            if r.get('key') in mapping:
                r['key'] = mapping[r['key']]; changed += 1
            new.append(json.dumps(r))
        if changed:
            f.write_text('\n'.join(new) + '\n'); print(f, changed)
