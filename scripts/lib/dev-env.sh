# shellcheck shell=bash
# Sourced by scripts/bootstrap.sh, scripts/test and .ci/run: where the development tools
# that bootstrap installs live, PATH so they are found, and the test image tags.
#
#   HSM_DEV_HOME   tools folder (default ~/.local/share/hsm-dev); uv goes in its bin/
#   HSM_REPO       the repository root
#   HSM_TEST_IMAGE_*  tags of the test images (tests/images/images.env), exported

HSM_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HSM_DEV_HOME=${HSM_DEV_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/hsm-dev}
export HSM_REPO HSM_DEV_HOME

_hsm_path_add() { # _hsm_path_add DIR first|last
    case ":$PATH:" in
        *":$1:"*) ;;
        *) if [ "$2" = first ]; then PATH="$1:$PATH"; else PATH="$PATH:$1"; fi ;;
    esac
}
_hsm_path_add "$HSM_DEV_HOME/bin" first
_hsm_path_add "${CARGO_HOME:-$HOME/.cargo}/bin" last
# debootstrap lives in /usr/sbin, which a non-root PATH often lacks.
_hsm_path_add /usr/sbin last
_hsm_path_add /sbin last
export PATH
unset -f _hsm_path_add

set -a
# shellcheck source=../../tests/images/images.env
. "$HSM_REPO/tests/images/images.env"
set +a
