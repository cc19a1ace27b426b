# Sourced by the install scripts that build into the cache (hack/*/install.sh). An entry is
# built in DEST.partial and moved into place complete, so a half-built one is never used; a
# second install waits for the first and then finds its entry.

# cache_claim DEST READY: prints DEST and exits when the command READY says the entry is
# there; otherwise waits for any other install of it and asks again. Returns holding the
# lock (fd 9, until the script ends) with DEST.partial empty, to be built.
cache_claim() {
  local dest=$1 ready=$2
  if "$ready"; then echo "$dest"; exit 0; fi
  mkdir -p "$(dirname "$dest")"
  exec 9>"$(dirname "$dest")/.install.lock"
  flock 9
  if "$ready"; then echo "$dest"; exit 0; fi
  rm -rf "$dest.partial" && mkdir -p "$dest.partial"
}

# cache_commit DEST BIN_DIR...: moves DEST.partial into place, marked complete. Virtualenvs
# are not relocatable: the scripts in their BIN_DIRs (relative to the entry) name the
# interpreter by path, so they are rewritten to DEST.
cache_commit() {
  local dest=$1 tmp=$1.partial
  shift
  grep -rlF "$tmp" "${@/#/$tmp/}" | xargs -r sed -i "s|$tmp|$dest|g"
  touch "$tmp/.complete"
  rm -rf "$dest" && mv "$tmp" "$dest"
}
