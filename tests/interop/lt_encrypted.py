"""lt_driver.py with MSE/PE forced: `in_enc_policy`/`out_enc_policy` = pe_forced and
`allowed_enc_level` = pe_rc4, so this libtorrent neither dials nor accepts a plaintext
connection and every byte of the payload stream is RC4. Same arguments and output as
lt_driver.py (tests/encryption.rs drives it)."""

import sys

import libtorrent as lt

import lt_driver

_plain_settings = lt_driver.settings


def forced_settings(ip, port, seed):
    s = _plain_settings(ip, port, seed)
    s.update(
        {
            "in_enc_policy": int(lt.enc_policy.forced),
            "out_enc_policy": int(lt.enc_policy.forced),
            "allowed_enc_level": int(lt.enc_level.rc4),
            "prefer_rc4": True,
        }
    )
    return s


lt_driver.settings = forced_settings

if __name__ == "__main__":
    sys.exit(lt_driver.main())
