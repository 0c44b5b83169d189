"""jaxprobe.hostmem: under the default ``keep`` policy a command's repeated XLA:CPU executions stop page-faulting
their large fresh buffers in; ``system`` leaves malloc alone; a bad ``JAXPROBE_HOST_MEMORY`` is ``error:``, exit 2."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxprobe import hostmem
from jaxprobe.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

# A command (cli.command, as `python -m jaxprobe.run` enters) whose body converts a linear-seg batch of float16
# patches to float32 again and again, then prints the median minor page faults of the last 10 of 40 executions.
# (Under keep the heap first grows for a dozen or so executions: JAX frees its outputs asynchronously, so several
# are alive at once until enough freed space is there to reuse.)
PROBE = textwrap.dedent("""
    import resource, statistics, sys
    import jax, jax.numpy as jnp
    import jaxprobe.run  # all a command has imported when it applies the policy
    from jaxprobe import cli

    def body(argv):
        x = jnp.ones((16, 37, 37, 768), jnp.float16)
        convert = jax.jit(lambda x: x.astype(jnp.float32))  # a fresh 67 MB output every execution
        faults = []
        for _ in range(40):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            jax.block_until_ready(convert(x))
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
        print(int(statistics.median(faults[-10:])))
        return 0

    sys.exit(cli.command("probe", body, ["go"]))
""")


def _faults_per_execution(policy: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != hostmem.ENV}
    if policy is not None:
        env[hostmem.ENV] = policy
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux") or hostmem._libc() is None, reason="a glibc policy")
def test_keep_policy_stops_the_page_faults_of_fresh_buffers_and_system_leaves_them():
    pages = 16 * 37 * 37 * 768 * 4 // os.sysconf("SC_PAGE_SIZE")  # the float32 output's pages (16,429 of 4 KiB)
    kept = _faults_per_execution(None)  # the default policy
    system = _faults_per_execution("system")
    assert kept < pages / 100, (kept, system)
    assert system > kept, (kept, system)


def test_policy_from_environment():
    assert hostmem.policy_from_env({}) == "keep"
    assert hostmem.policy_from_env({hostmem.ENV: " System "}) == "system"
    with pytest.raises(ConfigError, match=r"^environment variable JAXPROBE_HOST_MEMORY='fast': expected one of "
                                          r"keep, system$"):
        hostmem.policy_from_env({hostmem.ENV: "fast"})


def test_a_command_with_a_bad_policy_says_error_and_exits_2(monkeypatch, capsys, tmp_path):
    from jaxprobe.embed.__main__ import main as embed_main
    from jaxprobe.run import main as run_main

    monkeypatch.setenv(hostmem.ENV, "fast")
    for main in (run_main, embed_main):
        assert main(["--config", str(ROOT / "configs" / "ptx_cls.py"), f"--config.cache_dir={tmp_path}"]) == 2
        err = capsys.readouterr().err
        assert err == "error: environment variable JAXPROBE_HOST_MEMORY='fast': expected one of keep, system\n"
    assert not any(tmp_path.iterdir())  # refused before any work


def test_a_second_policy_in_one_process_is_refused(monkeypatch):
    monkeypatch.setattr(hostmem, "_applied", "keep")
    monkeypatch.setattr(hostmem, "_line", "host memory: keep")
    assert hostmem.apply("keep") == "host memory: keep"  # the same again: nothing more to do
    with pytest.raises(ConfigError, match="host memory policy 'system' asked after 'keep' was applied"):
        hostmem.apply("system")
    with pytest.raises(ConfigError, match="host memory policy 'lazy': expected one of keep, system"):
        hostmem.apply("lazy")


def test_without_glibc_keep_is_reported_as_not_applied_and_can_be_asked_again(monkeypatch):
    monkeypatch.setattr(hostmem, "_applied", None)
    monkeypatch.setattr(hostmem, "_line", None)
    monkeypatch.setattr(hostmem, "_libc", lambda: None)
    line = "host memory: system malloc (not glibc: the keep policy needs glibc's mallopt)"
    assert hostmem.apply("keep") == line
    assert hostmem.apply("keep") == line  # a second command in the same process is no conflict
    assert hostmem.describe() == line
