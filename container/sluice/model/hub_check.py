"""Can a hub id be downloaded at all? Asked once by ``container/serve``, before anything binds.

Without a network, ``from_pretrained`` spends about 50 s in huggingface_hub's retries and then says
"couldn't connect"; one request with a short timeout says the same at once. The endpoint is
huggingface_hub's own (``HF_ENDPOINT``), and with ``HF_HUB_OFFLINE=1`` only the local cache counts.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from ..config import ConfigError, not_a_directory

PROBE_TIMEOUT_SECONDS = 5.0
NO_NETWORK_HINT = "pass a directory (HF_MODEL_ID=/path/to/model) or set HF_ENDPOINT"


def check_hub_model(model_id: str, revision: str | None) -> None:
    """Raise ConfigError (one line) when the hub id cannot be fetched from the cache or the hub."""
    from huggingface_hub import constants, try_to_load_from_cache  # reads HF_* from the env

    if constants.HF_HUB_OFFLINE:
        if not isinstance(try_to_load_from_cache(model_id, "config.json", revision=revision), str):
            raise ConfigError(f"{not_a_directory(model_id)} and not in the local "
                              "hub cache (HF_HUB_OFFLINE=1); pass a directory (HF_MODEL_ID=/path/to/model)")
        return
    reason = _unreachable(f"{constants.ENDPOINT}/api/models/{model_id}")
    if reason:
        raise ConfigError(f"no network: {not_a_directory(model_id)} and "
                          f"{constants.ENDPOINT} cannot be reached ({reason}); {NO_NETWORK_HINT}")


def _unreachable(url: str) -> str | None:
    """Why nothing answered ``url``, or None when the hub answered (any status: it is there)."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"),
                               timeout=PROBE_TIMEOUT_SECONDS).close()
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as error:
        return str(getattr(error.reason, "strerror", None) or error.reason)
    except OSError as error:  # a timeout while reading the answer
        return str(error.strerror or error)
    return None
