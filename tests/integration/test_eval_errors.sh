#!/usr/bin/env bash
# Bad input to `freeair eval` gives exit 1 and one line naming the file and
# the reason (never a crash); usage errors exit 2; degenerate but valid data
# (one class only, tiny subgroups, different images per model) is reported
# with nulls and reasons, not refused.
set -euo pipefail
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
# expect CODE PATTERN -- ARGS...: exit status and a one-line message.
expect() {
  local code="$1" pattern="$2"; shift 3
  local rc=0
  "$FREEAIR_BIN" eval "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -q -- "$pattern" "$tmp/err"; then
    echo "FAIL: eval $* -> exit $rc (want $code), stderr:"; sed 's/^/    /' "$tmp/err"
    echo "    (wanted pattern: $pattern)"
    fails=$((fails+1))
  elif [ "$code" -eq 1 ] && [ "$(grep -vc '^freeair eval: warning' "$tmp/err")" -ne 1 ]; then
    echo "FAIL: eval $*: more than one error line:"; sed 's/^/    /' "$tmp/err"; fails=$((fails+1))
  fi
}
csv() { f="$tmp/$1"; shift; printf '%s\n' "$@" >"$f"; }
H="id,patient_id,label,score,split"
csv ok.csv "$H" "a,p1,1,0.9,val" "b,p2,0,0.1,val" "c,p3,1,0.8,test" "d,p4,0,0.3,test" "e,p5,1,0.4,test" "f,p6,0,0.2,test"
csv nan.csv "$H" "a,p1,1,0.9,test" "b,p2,0,nan,test"
csv text.csv "$H" "a,p1,1,0.9,test" "b,p2,0,high,test"
csv empty_score.csv "$H" "a,p1,1,0.9,test" "b,p2,0,,test"
csv inf.csv "$H" "a,p1,1,inf,test" "b,p2,0,0.2,test"
csv dup.csv "$H" "a,p1,1,0.9,test" "b,p2,0,0.2,test" "a,p3,1,0.7,test"
csv label.csv "$H" "a,p1,1,0.9,test" "b,p2,2,0.2,test"
csv noscore.csv "id,patient_id,label,prob" "a,p1,1,0.9"
csv header_only.csv "$H"
csv onlytrain.csv "$H" "a,p1,1,0.9,train"
csv conflict.csv "model,$H" "m1,a,p1,1,0.9,test" "m1,b,p2,0,0.2,test" "m2,a,p1,0,0.8,test" "m2,b,p2,0,0.1,test"
csv leak.csv "$H" "a,p1,1,0.9,val" "b,p2,0,0.2,val" "a,p1,1,0.8,test" "c,p3,0,0.1,test"
csv val_m1.csv "model,id,patient_id,label,score" "m1,v1,q1,1,0.9" "m1,v2,q2,0,0.1"
csv two_models.csv "model,id,patient_id,label,score" "m1,a,p1,1,0.9" "m1,b,p2,0,0.2" "m2,a,p1,1,0.8" "m2,b,p2,0,0.1"
csv ragged.csv "$H" "a,p1,1,0.9,test,extra,cells"
printf 'id,label,score\n"a,1,0.5\n' >"$tmp/badquote.csv"

expect 1 "nan.csv: line 3 (id 'b'): score is NaN" -- --predictions "$tmp/nan.csv" -o "$tmp/o"
expect 1 "text.csv: line 3 (id 'b'): score 'high' is not a number" -- --predictions "$tmp/text.csv" -o "$tmp/o"
expect 1 "empty_score.csv: line 3 (id 'b'): score is empty" -- --predictions "$tmp/empty_score.csv" -o "$tmp/o"
expect 1 "inf.csv: line 2 (id 'a'): score is infinite" -- --predictions "$tmp/inf.csv" -o "$tmp/o"
expect 1 "dup.csv: line 4: duplicate id 'a' for model 'model' (first at .*dup.csv line 2)" -- --predictions "$tmp/dup.csv" -o "$tmp/o"
expect 1 "label.csv: line 3 (id 'b'): label '2' is not 0 or 1" -- --predictions "$tmp/label.csv" -o "$tmp/o"
expect 1 "noscore.csv: no 'score (or probability)' column (columns: id, patient_id, label, prob)" -- --predictions "$tmp/noscore.csv" -o "$tmp/o"
expect 1 "header_only.csv: no rows with split 'test'" -- --predictions "$tmp/header_only.csv" -o "$tmp/o"
expect 1 "onlytrain.csv: no rows with split 'test'" -- --predictions "$tmp/onlytrain.csv" -o "$tmp/o"
expect 1 "ok.csv: no column 'site' to group by" -- --predictions "$tmp/ok.csv" --group-by site -o "$tmp/o"
expect 1 "id 'a' has label 0 for model 'm2' but 1 for model 'm1'" -- --predictions "$tmp/conflict.csv" -o "$tmp/o"
expect 1 "id 'a' is in both the validation and the test rows" -- --predictions "$tmp/leak.csv" -o "$tmp/o"
expect 1 "no validation rows for model 'm2'" -- --predictions "$tmp/two_models.csv" --val-predictions "$tmp/val_m1.csv" -o "$tmp/o"
expect 1 "missing.csv" -- --predictions "$tmp/missing.csv" -o "$tmp/o"
expect 1 "ragged.csv" -- --predictions "$tmp/ragged.csv" -o "$tmp/o"
expect 1 "badquote.csv" -- --predictions "$tmp/badquote.csv" -o "$tmp/o"
expect 1 "unknown primary operating point 'median'" -- --predictions "$tmp/ok.csv" --primary median -o "$tmp/o"
# scoring with checkpoints (--model/--manifest): manifest and checkpoint errors
printf 'path,label\na.png,1\n' >"$tmp/nosplit.csv"
printf 'path,label,split\na.png,1,test\nb.png,maybe,test\n' >"$tmp/badlabel.csv"
printf 'path,label,split\na.png,1,train\n' >"$tmp/notest.csv"
printf 'path,label,split,status\na.png,1,test,ok\n' >"$tmp/okm.csv"
expect 1 "nom.csv: No such file" -- --model "$tmp/ckpt.safetensors" --manifest "$tmp/nom.csv" -o "$tmp/o"
expect 1 "nosplit.csv: no 'split' column" -- --model "$tmp/ckpt.safetensors" --manifest "$tmp/nosplit.csv" -o "$tmp/o"
expect 1 "badlabel.csv: line 3: label is not 0 or 1" -- --model "$tmp/ckpt.safetensors" --manifest "$tmp/badlabel.csv" -o "$tmp/o"
expect 1 "notest.csv: no usable rows with split 'test'" -- --model "$tmp/ckpt.safetensors" --manifest "$tmp/notest.csv" -o "$tmp/o"
expect 1 "okm.csv: no column 'site' to group by" -- --model "$tmp/ckpt.safetensors" --manifest "$tmp/okm.csv" --group-by site -o "$tmp/o"
expect 1 "nockpt.safetensors: No such file" -- --model "$tmp/nockpt.safetensors" --manifest "$tmp/okm.csv" -o "$tmp/o"
expect 1 "ok.csv: checkpoint given twice" -- --model "$tmp/ok.csv" --model "$tmp/ok.csv" --manifest "$tmp/okm.csv" -o "$tmp/o"
expect 1 "ok.csv: header length" -- --model "$tmp/ok.csv" --manifest "$tmp/okm.csv" -o "$tmp/o"
expect 2 "--model and --manifest go together" -- --model "$tmp/ckpt.safetensors" -o "$tmp/o"
expect 2 "either --predictions or --model" -- --model "$tmp/ckpt.safetensors" --manifest "$tmp/okm.csv" --predictions "$tmp/ok.csv"
expect 1 "Is a directory\|not a directory\|File exists" -- --predictions "$tmp/ok.csv" -o "$tmp/ok.csv"
expect 2 "usage: freeair eval" --
expect 2 "unknown option '--frobnicate'" -- --frobnicate 1
expect 2 "--conf: '2' is not in (0, 1)" -- --predictions "$tmp/ok.csv" --conf 2
expect 2 "--bootstrap: 'many' is not a non-negative integer" -- --predictions "$tmp/ok.csv" --bootstrap many
expect 2 "--target-sens: 'x' is not a list" -- --predictions "$tmp/ok.csv" --target-sens x
"$FREEAIR_BIN" eval --help | grep -q -- "--predictions FILE"

# Valid but degenerate data: exit 0, nulls with reasons.
H2="model,id,patient_id,label,score,split,site"
rows=("$H2")
for i in $(seq 1 12); do rows+=("m1,v$i,vp$i,$((i%2)),0.$((i%9+1)),val,A"); done
for i in $(seq 1 10); do rows+=("m1,t$i,tp$i,1,0.$((i%9+1)),test,A"); done   # test: positives only
rows+=("m1,t11,tp11,1,0.7,test,B" "m1,t12,tp12,0,0.3,test,B")               # B: 1 positive, 1 negative
csv degenerate.csv "${rows[@]}"
"$FREEAIR_BIN" eval --predictions "$tmp/degenerate.csv" --group-by site --bootstrap 100 -o "$tmp/deg" >/dev/null 2>"$tmp/err"
"$REF_PYTHON" - "$tmp/deg/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["models"][0]
sub = {s["value"]: s for s in m["subgroups"]}
a = sub["A"]
assert a["auc"]["estimate"] is None and "only positive cases" in a["auc"]["reason"], a["auc"]
assert a["roc"]["fpr"] == [] and a["roc"]["reason"]
op = a["operating_points"][0]
assert op["specificity"]["estimate"] is None and op["sensitivity"]["estimate"] is not None
b = sub["B"]
assert b["auc"]["estimate"] == 1.0 and b["auc"]["delong_ci"] is None and "at least 2" in b["auc"]["reason"], b["auc"]
o = m["overall"]
assert o["auc"]["estimate"] is not None and o["auc"]["bootstrap_skipped"] >= 0
print("degenerate subgroups reported with reasons")
PY
# Models that scored different images: a warning, comparisons on common ids.
csv partial.csv "model,id,patient_id,label,score" "m1,a,p1,1,0.9" "m1,b,p2,0,0.2" "m1,c,p3,1,0.6" "m1,d,p4,0,0.5" "m1,e,p5,0,0.1" \
  "m2,a,p1,1,0.8" "m2,b,p2,0,0.1" "m2,c,p3,1,0.7" "m2,d,p4,0,0.4"
"$FREEAIR_BIN" eval --predictions "$tmp/partial.csv" --bootstrap 10 -o "$tmp/part" >/dev/null 2>"$tmp/err"
grep -q "scored different test images" "$tmp/err"
"$REF_PYTHON" -c "
import json,sys; c=json.load(open('$tmp/part/metrics.json'))['comparisons'][0]
assert c['n']==4 and c['n_unmatched']==1, c"
# `freeair predict` output (path, probability, status) with labels merged:
# unscored rows are left out with a warning.
csv predict.csv "path,probability,status,reason,label,patient_id" "a.dcm,0.9,ok,,1,p1" "b.dcm,0.2,ok,,0,p2" \
  "c.dcm,,excluded,lateral_view: LL,0,p3" "d.dcm,0.7,ok,,1,p4" "e.dcm,0.4,ok,,0,p5"
"$FREEAIR_BIN" eval --predictions "$tmp/predict.csv" --bootstrap 10 -o "$tmp/pred" >/dev/null 2>"$tmp/err"
grep -q "1 row(s) with a status other than 'ok'" "$tmp/err"
"$REF_PYTHON" -c "
import json; m=json.load(open('$tmp/pred/metrics.json'))['models'][0]['overall']
assert m['n']==4 and m['auc']['estimate']==1.0, m['n']"
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "error handling ok"
