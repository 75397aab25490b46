#!/usr/bin/env bash
# `make images`: build Spool's two container images with buildah, from Debian packages and PyPI
# wheels only. No container registry is used, and the image builds themselves need no network.
#
#   1. tools    apt-get install buildah debootstrap, when missing
#   2. rootfs   debootstrap a Debian bookworm minbase with python3 and python3-venv
#               (cached in .spool/images/rootfs)
#   3. base     import that rootfs as the local image localhost/spool-base:bookworm
#   4. wheels   download the wheels of Spool's runtime dependencies into images/wheels, at the
#               versions the development venv has (.venv/bin/pip freeze)
#   5. build    buildah bud images/runner.Containerfile and images/control-plane.Containerfile
#               with BASE=localhost/spool-base:bookworm and pip offline (PIP_NO_INDEX=1)
#   6. check    run the agent and the services inside the images, without network; print sizes
#
# A step whose inputs have not changed since the last run is skipped, so a rerun takes seconds.
# Environment: SPOOL_IMAGE_TAG (default latest), SPOOL_DEBIAN_MIRROR (default
# http://deb.debian.org/debian), SPOOL_REBUILD_ROOTFS=1 to debootstrap again (security updates).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

STATE=$ROOT/.spool/images
ROOTFS=$STATE/rootfs
WHEELS=$ROOT/images/wheels
PIP=$ROOT/.venv/bin/pip
SUITE=bookworm
MIRROR=${SPOOL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PACKAGES=python3,python3-venv,ca-certificates,netbase
TAG=${SPOOL_IMAGE_TAG:-latest}
BASE_IMAGE=localhost/spool-base:$SUITE
RUNNER_IMAGE=localhost/spool-runner:$TAG
CONTROL_PLANE_IMAGE=localhost/spool-control-plane:$TAG
PYTHON_VERSION=3.11 # Debian bookworm's python3: the wheels are downloaded for it
BUILDAH=(buildah --storage-driver vfs)
CONTAINERS=() # working containers of this run, removed on exit
OLD_BASE=""   # the base image a new one replaced, removed once nothing is built on it

step() { printf '\n==> [%ss] %s\n' "$SECONDS" "$*" >&2; }
run() {
	printf '+ %s\n' "$*" >&2
	"$@"
}
die() {
	printf 'build-images: FAILED: %s\n' "$*" >&2
	exit 1
}
cleanup() {
	local ctr
	for ctr in "${CONTAINERS[@]}"; do "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true; done
}
trap 'die "line $LINENO: $BASH_COMMAND"' ERR
trap cleanup EXIT

# The sha256 of the standard input, as a short hex string.
digest() { sha256sum | cut -c1-32; }

# The value of label $2 on local image $1, empty when the image or the label is missing.
image_label() {
	"${BUILDAH[@]}" inspect --type image --format "{{index .OCIv1.Config.Labels \"$2\"}}" "$1" \
		2>/dev/null || true
}

ensure_tools() {
	step "tools: buildah and debootstrap"
	local missing=()
	command -v buildah >/dev/null || missing+=(buildah)
	command -v debootstrap >/dev/null || missing+=(debootstrap)
	[[ $(id -u) == 0 ]] || die "run as root: debootstrap, chroot and buildah's vfs storage need it"
	[[ -x $PIP ]] || die "$PIP is missing: run 'make setup' first"
	if ((${#missing[@]})); then
		run apt-get install -y --no-install-recommends "${missing[@]}" ||
			{ run apt-get update && run apt-get install -y --no-install-recommends "${missing[@]}"; }
	fi
	printf '%s\n' "$(buildah --version)" "debootstrap $(dpkg-query -W -f='${Version}' debootstrap)"
}

ensure_rootfs() {
	step "rootfs: Debian $SUITE minbase + $PACKAGES in ${ROOTFS#"$ROOT"/}"
	local inputs="$SUITE $MIRROR $PACKAGES v1"
	if [[ -z ${SPOOL_REBUILD_ROOTFS:-} && -f $ROOTFS.stamp && -d $ROOTFS ]] &&
		[[ $(head -n1 "$ROOTFS.stamp") == "$inputs" ]]; then
		echo "cached (made $(sed -n 2p "$ROOTFS.stamp")); SPOOL_REBUILD_ROOTFS=1 makes it again"
		return
	fi
	rm -rf "$ROOTFS" "$ROOTFS.new" "$ROOTFS.stamp"
	mkdir -p "$STATE"
	run debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS.new" "$MIRROR"
	# Security and point-release updates on top of the release.
	cat >"$ROOTFS.new/etc/apt/sources.list" <<-EOF
		deb $MIRROR $SUITE main
		deb $MIRROR $SUITE-updates main
		deb ${MIRROR%/debian}/debian-security $SUITE-security main
	EOF
	run chroot "$ROOTFS.new" apt-get update -q
	run chroot "$ROOTFS.new" env DEBIAN_FRONTEND=noninteractive apt-get upgrade -y -q
	run chroot "$ROOTFS.new" apt-get clean
	: >"$ROOTFS.new/etc/resolv.conf" # debootstrap copied this machine's; containers get their own
	# What an image does not need: package lists, caches, logs, manuals, docs (licences stay).
	rm -rf "$ROOTFS.new"/var/lib/apt/lists/* "$ROOTFS.new"/var/cache/apt/* \
		"$ROOTFS.new"/var/log/* "$ROOTFS.new"/usr/share/man/* "$ROOTFS.new"/usr/share/info/*
	find "$ROOTFS.new/usr/share/doc" -type f ! -name copyright -delete
	find "$ROOTFS.new/usr/share/doc" -type d -empty -delete
	mv "$ROOTFS.new" "$ROOTFS"
	printf '%s\n%s\n' "$inputs" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$ROOTFS.stamp"
	du -sh "$ROOTFS"
}

ensure_base_image() {
	step "base: $BASE_IMAGE from the rootfs"
	local want ctr mnt
	want=$(digest <"$ROOTFS.stamp")
	if [[ $(image_label "$BASE_IMAGE" io.spool.rootfs) == "$want" ]]; then
		echo "up to date"
		return
	fi
	OLD_BASE=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$BASE_IMAGE" \
		2>/dev/null || true)
	ctr=$(run "${BUILDAH[@]}" from scratch)
	CONTAINERS+=("$ctr")
	mnt=$(run "${BUILDAH[@]}" mount "$ctr")
	run cp -a "$ROOTFS/." "$mnt/" # cp -a, not buildah copy: owners and modes stay as dpkg set them
	run "${BUILDAH[@]}" umount "$ctr"
	run "${BUILDAH[@]}" config --env LANG=C.UTF-8 --cmd /bin/bash \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--label io.spool.rootfs="$want" --created-by "scripts/build-images.sh" "$ctr"
	run "${BUILDAH[@]}" commit --rm "$ctr" "$BASE_IMAGE"
}

# The wheels are downloaded for the image (CPython 3.11 on glibc ≤ 2.36, bookworm's), not for
# whatever runs this script, so pip in the build never compiles and never goes online.
ensure_wheels() {
	step "wheels: Spool's runtime dependencies in ${WHEELS#"$ROOT"/}"
	local requirements constraints platforms=() minor want
	requirements=$("$ROOT/.venv/bin/python" -c 'import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(project["project"]["dependencies"] + project["build-system"]["requires"]))')
	constraints=$("$PIP" freeze --exclude-editable --exclude spool | grep '==' || true)
	for minor in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${minor}_$(uname -m)"); done
	want=$(printf '%s\n' "$requirements" "$constraints" "${platforms[*]}" | digest)
	if [[ -f $STATE/wheels.stamp && $(cat "$STATE/wheels.stamp") == "$want" ]] &&
		compgen -G "$WHEELS/*.whl" >/dev/null; then
		echo "up to date ($(find "$WHEELS" -name '*.whl' | wc -l) wheels)"
		return
	fi
	mkdir -p "$STATE"
	find "$WHEELS" -name '*.whl' -delete
	printf '%s\n' "$requirements" >"$STATE/requirements.txt"
	printf '%s\n' "$constraints" >"$STATE/constraints.txt"
	run "$PIP" download --quiet --dest "$WHEELS" --only-binary=:all: "${platforms[@]}" \
		--python-version "$PYTHON_VERSION" --implementation cp --abi "cp${PYTHON_VERSION/./}" \
		-r "$STATE/requirements.txt" -c "$STATE/constraints.txt"
	echo "$want" >"$STATE/wheels.stamp"
	echo "$(find "$WHEELS" -name '*.whl' | wc -l) wheels, $(du -sh "$WHEELS" | cut -f1)"
}

# What an image is built from: the Containerfile, the sources it copies, the wheels, the base.
source_digest() {
	{
		echo "$1" "$(image_label "$BASE_IMAGE" io.spool.rootfs)"
		find pyproject.toml libs services images -type f ! -path '*/__pycache__/*' \
			! -name '*.pyc' ! -path '*.egg-info/*' -print0 | sort -z | xargs -0 sha256sum
	} | digest
}

build_image() {
	local containerfile=$1 image=$2 want previous
	step "build: $image from $containerfile"
	want=$(source_digest "$containerfile")
	if [[ $(image_label "$image" io.spool.source) == "$want" ]]; then
		echo "up to date (sources unchanged)"
		return
	fi
	previous=$("${BUILDAH[@]}" inspect --type image --format '{{.FromImageID}}' "$image" 2>/dev/null ||
		true)
	run "${BUILDAH[@]}" bud --isolation chroot --pull-never \
		--build-arg BASE="$BASE_IMAGE" --build-arg PIP_NO_INDEX=1 \
		--label io.spool.source="$want" -f "$containerfile" -t "$image" .
	# The image this one replaces, now untagged: vfs keeps a full copy of it otherwise.
	if [[ -n $previous ]]; then "${BUILDAH[@]}" rmi "$previous" >/dev/null 2>&1 || true; fi
}

# Sets CTR to a new working container of image $1 (removed on exit). One per image: with vfs,
# every container is a full copy of its image.
new_container() {
	CTR=$("${BUILDAH[@]}" from --pull-never "$1")
	CONTAINERS+=("$CTR")
}

# Runs `$@` in working container $1 (the image's user, no network: chroot isolation shares the
# caller's network, so buildah runs in a network namespace of its own, with a loopback only).
run_in() {
	local ctr=$1
	shift
	printf '+ [%s] %s\n' "$("${BUILDAH[@]}" inspect --format '{{.FromImage}}' "$ctr")" "$*" >&2
	unshare --net "${BUILDAH[@]}" run --isolation chroot "$ctr" -- "$@"
}

check_images() {
	step "check: the agent and the services start inside the images (no network)"
	local runner control_plane ctr uid module
	new_container "$RUNNER_IMAGE" && runner=$CTR
	new_container "$CONTROL_PLANE_IMAGE" && control_plane=$CTR
	for ctr in "$runner" "$control_plane"; do
		uid=$(run_in "$ctr" id -u)
		[[ $uid == 10001 ]] || die "$ctr runs as uid $uid, not 10001"
	done
	run_in "$runner" python -c 'import spool_agent.app, spool_common; print("agent imports: ok")'
	# The agent reads its settings before its arguments; these three are required ones.
	run_in "$runner" env SPOOL_SERVICE_ID=check SPOOL_REPLICA_ID=check SPOOL_AGENT_TOKEN=check \
		python -m spool_agent --version
	for module in spool_gateway spool_scheduler spool_autoscaler spool_trigger_engine; do
		run_in "$control_plane" python -m "$module" --version
	done
}

main() {
	SECONDS=0
	ensure_tools
	ensure_rootfs
	ensure_base_image
	ensure_wheels
	build_image images/runner.Containerfile "$RUNNER_IMAGE"
	build_image images/control-plane.Containerfile "$CONTROL_PLANE_IMAGE"
	if [[ -n $OLD_BASE ]]; then "${BUILDAH[@]}" rmi "$OLD_BASE" >/dev/null 2>&1 || true; fi
	check_images
	step "done in $SECONDS s"
	"${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}}  {{.Size}}' |
		grep -E "spool-(base|runner|control-plane):" || true
}

main "$@"
