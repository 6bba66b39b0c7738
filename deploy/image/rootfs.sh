# Helpers to assemble a container's root filesystem from programs installed on this machine:
# each program is copied with the shared libraries it links (as `ldd` resolves them), and
# nothing else, so an image built FROM scratch on it needs no registry and no package manager.
# Source it: `. deploy/image/rootfs.sh`.

# add_program ROOT FILE [DEST]: copies FILE to ROOT/DEST (default: its own path) with its
# libraries and the dynamic loader.
add_program() {
  local root=$1 file=$2 dest=${3:-$2}
  mkdir -p "$root$(dirname "$dest")"
  cp -L "$file" "$root$dest"
  add_libraries "$root" "$file"
}

# add_libraries ROOT ELF: copies the shared libraries ELF links, at their own paths.
add_libraries() {
  local root=$1 elf=$2 lib
  for lib in $(ldd "$elf" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
    [ -e "$root$lib" ] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}

# add_user ROOT NAME UID: a user and its group of the same id, for USER and runAsUser.
add_user() {
  local root=$1 name=$2 uid=$3
  mkdir -p "$root/etc"
  echo "$name:x:$uid:$uid::/nonexistent:/sbin/nologin" >>"$root/etc/passwd"
  echo "$name:x:$uid:" >>"$root/etc/group"
}

# build_image TAG CONTEXT: builds CONTEXT/Containerfile as TAG and removes the image TAG named
# before, so that rebuilding (every test run does) leaves no untagged images behind.
build_image() {
  local tag=$1 context=$2 old
  old=$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
  podman build --quiet --tag "$tag" --file "$context/Containerfile" "$context" >/dev/null
  if [ -n "$old" ] && [ "$old" != "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
}
