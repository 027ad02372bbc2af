"""The scale-out rehearsal's parts that need no stack (``make rehearse`` runs the whole)."""

import random
import shutil
import subprocess
from pathlib import Path

from core.config import production_problems
from devtools.rehearse import (
    FACES,
    NGINX_TEMPLATE,
    Outcome,
    failed,
    in_flight,
    missed_runs,
    nginx_config,
    photo_variant,
    production_env,
)


def test_nginx_config_puts_every_host_behind_one_port(tmp_path: Path) -> None:
    config = nginx_config(
        NGINX_TEMPLATE.read_text(), "127.0.0.1:8399", ["127.0.0.1:8401", "127.0.0.1:8402"], "/x"
    )
    assert "listen 127.0.0.1:8399;" in config
    assert "server 127.0.0.1:8401 max_fails=1 fail_timeout=5s;" in config
    assert "server 127.0.0.1:8402 max_fails=1 fail_timeout=5s;" in config
    assert "proxy_next_upstream error timeout http_502 http_503;" in config
    assert "non_idempotent" not in config.split("proxy_next_upstream ")[1].split(";")[0]
    assert "$proxy_add_x_forwarded_for" in config and "${" not in config
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if Path(nginx).exists():  # where Debian's nginx is installed, it must accept the file
        prefix = tmp_path / "nginx"
        prefix.mkdir()
        tmp_path.chmod(0o755)
        prefix.chmod(0o755)
        conf = prefix / "nginx.conf"
        conf.write_text(
            nginx_config(
                NGINX_TEMPLATE.read_text(), "127.0.0.1:8399", ["127.0.0.1:8401"], str(prefix)
            )
        )
        checked = subprocess.run(
            [nginx, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stderr


def test_missed_runs_counts_each_interval_without_a_run() -> None:
    assert missed_runs([0, 15, 30, 45], 15, 60) == 0
    assert missed_runs([0, 15, 17, 32], 15, 40) == 0  # a standby ran early: nothing missed
    assert missed_runs([0, 15, 47], 15, 50) == 1  # 32 s without a run
    assert missed_runs([0, 15], 15, 61) == 2  # nothing after 15 s until 61 s
    assert missed_runs([], 15, 60) == 0


def test_a_failure_is_no_answer_or_a_server_error_and_in_flight_spans_the_kill() -> None:
    assert failed(Outcome("reserve", 1.0, 2.0, 0))
    assert failed(Outcome("reserve", 1.0, 2.0, 502))
    assert not failed(Outcome("reserve", 1.0, 2.0, 409))
    assert in_flight(Outcome("reserve", 1.0, 2.0, 502), [1.5])
    assert not in_flight(Outcome("reserve", 3.0, 4.0, 502), [1.5])


def test_the_rehearsal_runs_with_a_production_environment() -> None:
    env = production_env("postgresql://x/y", "http://127.0.0.1:8353", "t")
    assert env["APP_ENV"] == "production"
    assert production_problems(env) == []


def test_a_photo_variant_is_a_new_jpeg_of_the_same_photo() -> None:
    photo = (FACES / "obama2.jpg").read_bytes()
    first, second = (photo_variant(photo, random.Random(seed)) for seed in (1, 2))
    assert first[:3] == second[:3] == b"\xff\xd8\xff"  # JPEG
    assert len({photo, first, second}) == 3


def test_photo_variants_never_repeat_even_when_the_draws_do() -> None:
    # The same seed draws the same crops: without the memory of crops used, these would be
    # identical images (a replay to the face check, which a 10-minute load hit once).
    photo = (FACES / "obama3.jpg").read_bytes()
    variants = [photo_variant(photo, random.Random(7)) for _ in range(5)]
    assert len(set(variants)) == 5
