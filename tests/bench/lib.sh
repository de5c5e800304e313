# shellcheck shell=bash
# Shared by the benchmark scripts (sourced, not run): reading perf.sh result lines and
# printing the side-by-side table with Tributary's advantage as a ratio.

# field LINE KEY: the value of KEY=VALUE in a perf.sh result line.
field() { tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"; }

# table_header: the column titles.
table_header() { printf '%-26s %14s %14s %10s\n' metric tributary kafka "advantage"; }

# row NAME TRIBUTARY KAFKA HIGHER_IS_BETTER(1|0): one metric of both systems and the ratio
# in Tributary's favour ("n/a" when either value is missing or zero).
row() {
  local ratio
  ratio=$(python3 -c "t,k=float('$2'),float('$3'); print(f'{(t/k if $4 else k/t):.2f}x' if t>0 and k>0 else 'n/a')" 2>/dev/null || echo n/a)
  printf '%-26s %14s %14s %10s\n' "$1" "$2" "$3" "$ratio"
}
