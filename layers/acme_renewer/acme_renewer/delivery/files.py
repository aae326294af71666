"""Delivery stage, on the host: the certificate's secret as files in a directory, written atomically, and a reload
when one of them changed.

Standard library only, and runnable as a script (`python3 files.py --secret NAME --dir DIR ...`): the SSM document
of template.yaml embeds this very file and runs it with the host's python3 (3.9 on Amazon Linux 2023), reading the
secret with the AWS CLI. `acme-renewer install` reads the secret with boto3 and runs the same functions.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import grp
import json
import os
import pwd
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The files are in place, but the reload command failed: the server may still serve the old certificate.
EXIT_RELOAD_FAILED = 3
# Left in the directory by a reload that failed, so that the next run reloads even when no file changes.
RELOAD_PENDING = ".reload-pending"
# 0755: the files' own modes protect them (the key is 0600 from creation); a server running as another user
# (--owner) must be able to enter the directory to reach the files it owns.
DIRECTORY_MODE = 0o755
PUBLIC_MODE, PRIVATE_MODE = 0o644, 0o600
PEM_KEYS = ("certificate", "chain", "fullchain", "private_key")
PFX_KEYS = ("pkcs12", "pkcs12_legacy")  # modern AES-256 first; the 3DES/SHA-1 one for old Windows and Java


class DeliveryError(Exception):
    """Ends the install with one line that says what to do, and the exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Wanted:
    """One file as the secret says it should be."""

    name: str
    content: bytes = b""
    private: bool = False

    def __repr__(self) -> str:  # the content may be a key: never shown
        return f"Wanted({self.name!r}, private={self.private})"

    @property
    def mode(self) -> int:
        return PRIVATE_MODE if self.private else PUBLIC_MODE


@dataclass(frozen=True)
class Owner:
    uid: int
    gid: int


@dataclass(frozen=True)
class Written:
    path: Path
    mode: int
    changed: bool


@dataclass(frozen=True)
class Reload:
    command: str
    ran: bool
    exit_code: int | None = None
    retry: bool = False  # run for the failed reload of an earlier run, whether or not a file changed now


@dataclass(frozen=True)
class Delivery:
    certificate_id: str
    secret: str
    directory: Path
    serial: str
    not_after: str
    files: tuple[Written, ...]
    reload: Reload | None

    @property
    def changed(self) -> bool:
        return any(written.changed for written in self.files)

    @property
    def exit_code(self) -> int:
        failed = self.reload is not None and self.reload.ran and self.reload.exit_code != 0
        return EXIT_RELOAD_FAILED if failed else EXIT_OK

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.certificate_id,
            "secret": self.secret,
            "directory": str(self.directory),
            "serial": self.serial,
            "not_after": self.not_after,
            "changed": self.changed,
            "files": [
                {"path": str(w.path), "mode": f"{w.mode:04o}", "result": "written" if w.changed else "unchanged"}
                for w in self.files
            ],
            "reload": None
            if self.reload is None
            else {
                "command": self.reload.command,
                "ran": self.reload.ran,
                "exit_code": self.reload.exit_code,
                "retry": self.reload.retry,
            },
            "exit_code": self.exit_code,
        }

    def lines(self) -> list[str]:
        shown = [f"{self.certificate_id}: serial {self.serial}, expires {self.not_after} (secret {self.secret})"]
        width = max(len(str(w.path)) for w in self.files)
        shown += [
            f"  {w.path!s:<{width}}  {'written' if w.changed else 'unchanged'} ({w.mode:04o})" for w in self.files
        ]
        if self.reload is None:
            shown.append("  reload: none given")
        elif not self.reload.ran:
            shown.append(f"  reload: not run, nothing changed ({self.reload.command})")
        elif self.reload.exit_code == 0:
            again = ", again: the last one had failed" if self.reload.retry else ""
            shown.append(f"  reload: ran {self.reload.command} (exit 0{again})")
        else:
            shown.append(
                f"  reload: {self.reload.command} FAILED with exit {self.reload.exit_code}; the new files are in"
                f" place (exit {EXIT_RELOAD_FAILED})"
            )
        return shown


def wanted_files(document: Mapping[str, Any], certificate_id: str, *, pfx: bool, bundle: bool) -> list[Wanted]:
    """The files the secret's JSON document makes: the four PEM files, and the PFX and bundle when asked for."""
    missing = [key for key in PEM_KEYS if not isinstance(document.get(key), str)]
    if len(missing) == len(PEM_KEYS) and isinstance(document.get("status"), str):
        # The renewer's placeholder: a new certificate's secret holds it in AWSCURRENT until the first is stored.
        raise DeliveryError(
            f"no certificate stored yet for {certificate_id} ({document['status']}): wait for the first issuance"
            f" (acme-renewer show {certificate_id}), then install again"
        )
    if missing:
        raise DeliveryError(
            f"the secret of {certificate_id} is not a certificate of acme-renewer (no {', '.join(missing)}): check"
            " --secret or the item's secret_name"
        )
    certificate, chain, fullchain, key = (str(document[name]) for name in PEM_KEYS)
    files = [
        Wanted("cert.pem", certificate.encode()),
        Wanted("chain.pem", chain.encode()),
        Wanted("fullchain.pem", fullchain.encode()),
        Wanted("privkey.pem", key.encode(), private=True),
    ]
    if bundle:  # HAProxy's one file: the key, then the full chain
        files.append(Wanted("bundle.pem", (key.rstrip("\n") + "\n" + fullchain).encode(), private=True))
    if pfx:
        files += pfx_files(document, certificate_id)
    return files


def pfx_files(document: Mapping[str, Any], certificate_id: str) -> list[Wanted]:
    chosen = next((key for key in PFX_KEYS if isinstance(document.get(key), str)), None)
    if chosen is None:
        raise DeliveryError(
            f'the secret of {certificate_id} holds no PKCS#12 (no pkcs12 key): set formats: ["pkcs12"] on the'
            " item, wait for the next certificate (or acme-renewer renew ID), then install again; or drop --pfx"
        )
    password = document.get("pkcs12_password")
    if not isinstance(password, str):
        raise DeliveryError(f"the secret of {certificate_id} has {chosen} but not the PFX's password: renew it")
    try:
        archive = base64.b64decode(str(document[chosen]), validate=True)
    except (binascii.Error, ValueError) as error:
        raise DeliveryError(f"the secret's {chosen} of {certificate_id} is not base64 ({error}): renew it") from None
    return [Wanted("cert.pfx", archive, private=True), Wanted("cert.pfx.password", password.encode(), private=True)]


def parse_owner(text: str) -> Owner:
    """USER:GROUP, USER (with the user's group) or :GROUP (with this process's user), names or numeric ids; a
    numeric user unknown to this host needs its group too."""
    user, _, group = text.partition(":")
    uid, user_gid = resolve_user(user, text) if user else (os.getuid(), os.getgid())
    gid = resolve_group(group, text) if group else user_gid
    if gid is None:
        raise DeliveryError(f"--owner {text}: no user with id {user} on this host; give the group too (UID:GID)", 2)
    return Owner(uid, gid)


def resolve_user(user: str, text: str) -> tuple[int, int | None]:
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        if user.isdigit():
            return int(user), None
        raise DeliveryError(f"--owner {text}: no user {user} on this host", EXIT_USAGE) from None
    return entry.pw_uid, entry.pw_gid


def resolve_group(group: str, text: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise DeliveryError(f"--owner {text}: no group {group} on this host", EXIT_USAGE) from None


def install_files(directory: Path, files: Sequence[Wanted], owner: Owner | None) -> tuple[Written, ...]:
    """Each file whose content, mode or owner differs is replaced atomically; the others are left alone."""
    if not directory.exists():
        directory.mkdir(mode=DIRECTORY_MODE, parents=True)
        os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode is cut by the umask
        fsync_directory(directory.parent)
    if not directory.is_dir():
        raise DeliveryError(f"--dir {directory} exists and is not a directory", EXIT_USAGE)
    remove_leftovers(directory, [wanted.name for wanted in files])
    return tuple(install_file(directory, wanted, owner) for wanted in files)


# A temporary file this old is no run's: one that died between creating it and renaming it (killed, power cut).
LEFTOVER_SECONDS = 3600


def remove_leftovers(directory: Path, names: Sequence[str]) -> None:
    """Temporary files left by a run that died: they may hold a key, and nothing else would ever remove them."""
    cutoff = time.time() - LEFTOVER_SECONDS
    for name in names:
        for leftover in directory.glob(f".{name}.*.tmp"):
            try:
                if leftover.lstat().st_mtime < cutoff:
                    leftover.unlink()
            except FileNotFoundError:  # another run just renamed or removed it
                pass


def install_file(directory: Path, wanted: Wanted, owner: Owner | None) -> Written:
    target = directory / wanted.name
    if is_current(target, wanted, owner):
        return Written(target, wanted.mode, changed=False)
    # mkstemp creates the file 0600 with O_EXCL: a key is never readable by others, not even for a moment.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{wanted.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(wanted.content)
            stream.flush()
            if owner is not None:
                os.fchown(stream.fileno(), owner.uid, owner.gid)
            os.fchmod(stream.fileno(), wanted.mode)  # after chown, which may clear the mode's setuid bits
            os.fsync(stream.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_directory(directory)
    return Written(target, wanted.mode, changed=True)


def is_current(target: Path, wanted: Wanted, owner: Owner | None) -> bool:
    try:
        status = target.lstat()
        if not target.is_file() or target.is_symlink() or (status.st_mode & 0o7777) != wanted.mode:
            return False
        if owner is not None and (status.st_uid, status.st_gid) != (owner.uid, owner.gid):
            return False
        return target.read_bytes() == wanted.content
    except FileNotFoundError:
        return False


def fsync_directory(directory: Path) -> None:
    """The rename is durable once the directory itself is on disk."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def run_reload(command: str) -> int:
    """Through the shell, as written; its output goes to stderr, so that stdout stays ours (one JSON document)."""
    try:
        stderr = sys.stderr.fileno()
    except (AttributeError, ValueError):  # a stderr without a file (io.UnsupportedOperation is a ValueError)
        done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        sys.stderr.write(done.stdout + done.stderr)
        return done.returncode
    return subprocess.run(command, shell=True, stdout=stderr, check=False).returncode


def deliver(
    document: Mapping[str, Any],
    directory: Path,
    *,
    certificate_id: str,
    secret: str,
    pfx: bool = False,
    bundle: bool = False,
    owner: Owner | None = None,
    reload_command: str | None = None,
    runner: Callable[[str], int] = run_reload,
) -> Delivery:
    """The secret's document into `directory`; the reload command runs when a file changed, or when the reload of
    an earlier run failed (the server may still serve the certificate before that one)."""
    written = install_files(directory, wanted_files(document, certificate_id, pfx=pfx, bundle=bundle), owner)
    reload: Reload | None = None
    pending = directory / RELOAD_PENDING
    if reload_command:
        retry = pending.exists()
        ran = retry or any(w.changed for w in written)
        code = runner(reload_command) if ran else None
        reload = Reload(reload_command, ran, code, retry)
        if code == 0:
            pending.unlink(missing_ok=True)
        elif ran:
            pending.touch(mode=PRIVATE_MODE)
    return Delivery(
        certificate_id,
        secret,
        directory,
        str(document.get("serial", "?")),
        str(document.get("not_after", "?")),
        written,
        reload,
    )


def unreadable(code: str, message: str, secret: str, certificate_id: str, *, issued: bool = True) -> DeliveryError:
    """What a failed GetSecretValue means for the host, from AWS's error code and message; `issued` False: the
    item says its first certificate is not stored yet, so its secret may not exist at all."""
    if code == "ResourceNotFoundException" and ("staging label" in message or not issued):
        # The secret exists with no AWSCURRENT version, or not yet: the first certificate is not stored yet.
        return DeliveryError(
            f"no certificate stored yet for {certificate_id} (secret {secret} has no AWSCURRENT version): wait for"
            f" the first issuance (acme-renewer show {certificate_id}), then install again"
        )
    if code == "ResourceNotFoundException":
        return DeliveryError(
            f"no secret {secret} in this account and region: check --secret, the item's secret_name and AWS_REGION"
        )
    if code == "InvalidRequestException" and "marked for deletion" in message:
        # AWS refuses reading a secret scheduled for deletion until it is restored (API_GetSecretValue, Errors).
        return DeliveryError(
            f"the secret {secret} of {certificate_id} is scheduled for deletion (its request was removed?): restore"
            f" it with aws secretsmanager restore-secret --secret-id {secret}, or add the certificate back"
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return DeliveryError(
            f"not allowed to read {secret}: give this host's role secretsmanager:GetSecretValue on it (and"
            f" kms:Decrypt on SecretsKmsKeyArn when set); AWS said: {message}"
        )
    return DeliveryError(f"cannot read {secret}: {code or 'error'}: {message}")


def read_with_aws_cli(secret: str, certificate_id: str, region: str | None = None) -> dict[str, Any]:
    """GetSecretValue (AWSCURRENT) through the AWS CLI, which every Amazon Linux host has."""
    command = ["aws", "secretsmanager", "get-secret-value", "--secret-id", secret]
    command += ["--query", "SecretString", "--output", "text"] + (["--region", region] if region else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        raise DeliveryError("the AWS CLI (aws) is not on the PATH: install it, or use acme-renewer install") from None
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"aws secretsmanager get-secret-value {secret} did not answer within 60 s") from None
    if done.returncode != 0:
        # The AWS CLI says "An error occurred (Code) when calling the GetSecretValue operation: message".
        text = " ".join(done.stderr.split())
        code = text.split("(", 1)[1].split(")", 1)[0] if "An error occurred (" in text else ""
        raise unreadable(code, text.split("operation: ", 1)[-1], secret, certificate_id)
    return parse_document(done.stdout, secret)


def parse_document(text: str, secret: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise DeliveryError(f"the secret {secret} is not a JSON object: it is not a certificate of acme-renewer")
    return document


def add_install_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by `acme-renewer install` and this script."""
    parser.add_argument("--dir", required=True, type=Path, metavar="DIR", help="where the files go (created 0755)")
    parser.add_argument(
        "--reload",
        metavar="CMD",
        help="shell command to run when a file changed, e.g. 'systemctl reload nginx' (exit 3 when it fails)",
    )
    parser.add_argument("--owner", metavar="USER:GROUP", help="owner of every file (names or numeric ids)")
    parser.add_argument("--pfx", action="store_true", help="also cert.pfx and cert.pfx.password (0600)")
    parser.add_argument("--bundle", action="store_true", help="also bundle.pem: the key and the full chain (0600)")


def main(argv: Sequence[str] | None = None) -> int:
    """The script the SSM document runs: the secret through the AWS CLI, then the same delivery as the CLI's."""
    parser = argparse.ArgumentParser(description="Write an acme-renewer certificate's secret as files.")
    parser.add_argument("--secret", required=True, metavar="NAME_OR_ARN", help="the certificate's secret")
    parser.add_argument("--id", metavar="ID", help="the certificate's id, for the messages (default: the secret)")
    parser.add_argument("--region", help="the secret's region (default: the AWS CLI's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    add_install_options(parser)
    args = parser.parse_args(argv)
    certificate_id = args.id or args.secret
    try:
        owner = parse_owner(args.owner) if args.owner else None
        document = read_with_aws_cli(args.secret, certificate_id, args.region or None)
        delivery = deliver(
            document,
            args.dir,
            certificate_id=certificate_id,
            secret=args.secret,
            pfx=args.pfx,
            bundle=args.bundle,
            owner=owner,
            reload_command=args.reload or None,
        )
    except DeliveryError as error:
        print(f"acme-renewer install: error: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(error), "exit_code": error.exit_code}))
        return error.exit_code
    except OSError as error:
        print(f"acme-renewer install: error: {error}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(error), "exit_code": EXIT_FAILED}))
        return EXIT_FAILED
    print(json.dumps(delivery.as_json()) if args.json else "\n".join(delivery.lines()))
    return delivery.exit_code


if __name__ == "__main__":
    sys.exit(main())
