#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what they need first.
#
#   scripts/test.sh            format check, clippy, all tests
#
# Under CI=true a missing tool is installed or the run fails loudly; it never
# silently skips. Tests send traffic only to loopback.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests need (later suites add prometheus, influxdb,
# chromium ...).
# iproute2: `ip` for the fault suite's network-namespace islands; openssl: the
# self-signed-certificate test makes its certificate the usual way;
# prometheus-alertmanager: the alert suite delivers to a real Alertmanager
# (API v2); python3-pip: to install the Standard Webhooks reference verifier;
# prometheus: the dashboard test (tests/tests/dashboard.rs) runs a real
# Prometheus that scrapes the coordinator's and the probe's /metrics, and
# `promtool check metrics` lints their text (probe/tests/agent.rs too).
# prometheus, victoria-metrics, influxdb: the export suite
# (tests/tests/export.rs) writes to the real servers and reads every sample
# back through their own query APIs.
APT_PACKAGES=(iproute2 openssl prometheus prometheus-alertmanager python3-pip victoria-metrics influxdb)

# Python packages the tests need: the Standard Webhooks reference verifier
# checks the alert suite's signatures (coordinator/tests/alerts.rs).
PIP_PACKAGES=(standardwebhooks==1.0.0)

say() { printf '\n==> %s\n' "$*"; }

install_apt_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null; then
    echo "missing Debian packages: ${missing[*]} (install them: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

install_apt_packages

install_pip_packages() {
  local missing=()
  for pkg in "${PIP_PACKAGES[@]}"; do
    python3 -m pip show "${pkg%%==*}" 2>/dev/null | grep -qx "Version: ${pkg##*==}" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "${CI:-}" != "true" ]; then
    echo "missing Python packages: ${missing[*]} (install them: pip install ${missing[*]}); the tests that need them skip" >&2
    return 0
  fi
  say "installing Python packages: ${missing[*]}"
  # Debian's python marks its environment externally managed (PEP 668).
  python3 -m pip install --quiet "${missing[@]}" 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages "${missing[@]}"
}

install_pip_packages

if ! cargo nextest --version >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    say "installing cargo-nextest"
    cargo install cargo-nextest --locked
  else
    echo "cargo-nextest not found; falling back to 'cargo test' (install it: cargo install cargo-nextest --locked)" >&2
  fi
fi

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

say "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
  # nextest does not run doc tests.
  cargo test --workspace --doc --locked
else
  cargo test --workspace --locked --no-fail-fast
fi
