#!/usr/bin/env bash
# Fails (exit 1, printing file:line) where README.md, CONTRIBUTING.md or docs/ narrate how qnet
# was built instead of what it is:
#   - a commit hash: 7-40 hex digits with a digit and a letter, or digits only after "commit "
#     or in a name like cartpole-at-<hash>.yaml; a `qnet-<hash>` binary;
#   - a work "session", in prose (`run::session` and other code spans are fine);
#   - a path outside the repository: /work/, /home/ or /root/ anywhere; /tmp/ in prose (example
#     commands in code may use it); a ../ path that does not land on a file of the repository.
# CHANGELOG.md and commit messages are where history goes; they are not checked.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd -P)

files=()
for file in README.md CONTRIBUTING.md; do [[ -f $file ]] && files+=("$file"); done
[[ -d docs ]] && while IFS= read -r file; do files+=("$file"); done < <(find docs -name '*.md' | sort)

found=0
flag() { echo "$1:$2: $3"; found=1; }

# The file with fenced code blocks blanked and inline code spans removed (line numbers kept).
prose() {
  awk '/^[[:space:]]*```/ { fenced = !fenced; print ""; next }
       fenced { print ""; next }
       { gsub(/`[^`]*`/, ""); print }' "$1"
}

for file in "${files[@]}"; do
  while IFS=: read -r line text; do
    flag "$file" "$line" "a qnet-<hash> binary: $text"
  done < <(grep -noP '\bqnet-[0-9a-f]{7,40}\b' "$file" || true)
  while IFS=: read -r line text; do
    flag "$file" "$line" "a commit hash: $text"
  done < <(grep -noP '(?<![0-9A-Za-z_])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![0-9A-Za-z_])' "$file" || true)
  while IFS=: read -r line text; do
    flag "$file" "$line" "a commit hash: $text"
  done < <(grep -noiP '(-at-|\bcommits? )[0-9]{7,40}\b' "$file" || true)
  while IFS=: read -r line text; do
    flag "$file" "$line" "a path outside the repository: $text"
  done < <(grep -noP '(?<![\w.])/(work|home|root)/\S*' "$file" || true)
  while IFS=: read -r line text; do
    flag "$file" "$line" "a path outside the repository, in prose: $text"
  done < <(prose "$file" | grep -noP '(?<![\w.])/tmp/\S*' || true)
  while IFS=: read -r line text; do
    flag "$file" "$line" "a work session, in prose: $text"
  done < <(prose "$file" | grep -noiP '\bsessions?\b' || true)
  # A ../ path must land on a file of the repository, from the file's folder.
  while IFS=: read -r line path; do
    target=$(realpath -m "$(dirname "$file")/${path%%#*}")
    [[ $target == "$root"/* && -e $target ]] || flag "$file" "$line" "a path outside the repository: $path"
  done < <(grep -noP '(?<![\w.])(\.\./)+[^\s)\]`"'"'"'>]*' "$file" || true)
done

if ((found)); then
  echo "check-history: the lines above tell how qnet was built; that belongs in commit messages and CHANGELOG.md" >&2
  exit 1
fi
echo "check-history: ${#files[@]} files describe qnet without its history"
