"""notify against a real HTTP server on 127.0.0.1; TensorBoard files read back with tensorboard's
own reader; ONNX export checked with onnxruntime."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

import trainhooks
from trainhooks import cli
from trainhooks.plugins.notify import NotificationWarning, Notify
from trainhooks.plugins.tensorboard import TensorBoard


class Webhook:
    """A real HTTP server that records JSON bodies; can fail or stall on purpose."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.raw: list[bytes] = []
        self.attempts = 0
        self.fail_first = 0
        self.delay = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                hook.attempts += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.raw.append(body)
                if hook.delay:
                    time.sleep(hook.delay)
                if hook.fail_first > 0:
                    hook.fail_first -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_notify_posts_start_and_end(make_trainer, loaders, webhook) -> None:
    trainer = make_trainer(plugins=[Notify(url=webhook.url)], epochs=2, name="digits-run")
    trainer.fit(*loaders)
    assert [b["event"] for b in webhook.bodies] == ["train_start", "train_end"]
    end = webhook.bodies[1]
    assert end["run"] == "digits-run" and end["stop_reason"] == "completed 2 epochs"
    assert end["text"].startswith("trainhooks run 'digits-run' finished: completed 2 epochs (")
    assert set(end["metrics"]) >= {"train/loss", "val/loss", "val/acc"}
    assert end["global_step"] == 6


def test_notify_on_exception(make_trainer, loaders, webhook) -> None:
    boom = trainhooks.LambdaCallback(on_train_epoch_end=lambda trainer: 1 / 0)
    trainer = make_trainer(plugins=[Notify(url=webhook.url, events="exception")], callbacks=[boom])
    with pytest.raises(trainhooks.HookError):
        trainer.fit(*loaders)
    assert [b["event"] for b in webhook.bodies] == ["exception"]
    assert "ZeroDivisionError" in webhook.bodies[0]["error"] and "failed at epoch 1" in webhook.bodies[0]["text"]


def test_notify_retries_then_succeeds(make_trainer, loaders, webhook) -> None:
    webhook.fail_first = 2
    trainer = make_trainer(plugins=[Notify(url=webhook.url, events="train_end", retries=2)], epochs=1)
    trainer.fit(*loaders)
    assert webhook.attempts == 3 and len(webhook.bodies) == 1


def test_notify_failure_warns_and_training_goes_on(make_trainer, loaders, webhook) -> None:
    webhook.delay = 1.0
    notify = Notify(url=webhook.url, timeout=0.2, retries=1)
    trainer = make_trainer(plugins=[notify], epochs=2)
    with pytest.warns(NotificationWarning, match=r"could not deliver .train_(start|end). .* after 2 attempts"):
        result = trainer.fit(*loaders)
    assert result.epochs_completed == 2 and notify.failures == 2


def test_notify_unreachable_server(make_trainer, loaders) -> None:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    trainer = make_trainer(plugins=[Notify(url=f"http://127.0.0.1:{port}/x", retries=0)], epochs=1)
    with pytest.warns(NotificationWarning, match="training continues"):
        assert trainer.fit(*loaders).epochs_completed == 1


def test_notify_body_is_strict_json_when_a_metric_is_nan(make_trainer, loaders, webhook) -> None:
    def poison(trainer: trainhooks.Trainer) -> None:
        trainer.metrics["val/loss"] = float("nan")

    trainer = make_trainer(
        plugins=[Notify(url=webhook.url, events="train_end")],
        callbacks=[trainhooks.LambdaCallback(on_fit_epoch_end=poison)],
        epochs=1,
    )
    trainer.fit(*loaders)

    def reject(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    body = json.loads(webhook.raw[-1], parse_constant=reject)  # what Slack's parser would do
    assert body["metrics"]["val/loss"] is None and "val/loss nan" in body["text"]


def test_notify_survives_a_server_that_does_not_speak_http(make_trainer, loaders) -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def answer_garbage() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"NOT HTTP AT ALL\r\n\r\n")

    threading.Thread(target=answer_garbage, daemon=True).start()
    try:
        notify = Notify(url=f"http://127.0.0.1:{port}/hook", retries=0)
        trainer = make_trainer(plugins=[notify], epochs=1)
        with pytest.warns(NotificationWarning, match=r"BadStatusLine.*training continues"):
            assert trainer.fit(*loaders).epochs_completed == 1
        assert notify.failures == 2
    finally:
        server.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x",
        "http://",
        "http://exa mple.invalid/x",
        "hooks.slack.com/x",
        "http://[::1",
        "http://h:abc/",
        "http://h:99999/",
    ],
)
def test_notify_rejects_a_bad_url_before_training(make_trainer, url) -> None:
    with pytest.raises(trainhooks.HookError, match="--notify-url must be an http"):
        make_trainer(plugins=[Notify(url=url)])


def test_notify_from_the_command_line(tmp_path, webhook) -> None:
    code = cli.main(
        ["fit", "-p", "notify", "--notify-url", webhook.url, "--epochs", "1", "--save-dir", str(tmp_path), "--quiet"]
    )
    assert code == 0 and [b["event"] for b in webhook.bodies] == ["train_start", "train_end"]
    assert cli.main(["fit", "-p", "notify", "--notify-url", "ftp://x", "--save-dir", str(tmp_path / "b")]) == 2


def test_tensorboard_event_files_read_back(make_trainer, loaders) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(plugins=[TensorBoard(every_n_steps=2)], epochs=3)
    result = trainer.fit(*loaders)
    acc = EventAccumulator(str(trainer.save_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for key in ("train/loss", "val/loss", "val/acc", "lr"):
        events = acc.Scalars(key)
        assert [e.step for e in events] == [1, 2, 3], key
        assert [e.value for e in events] == pytest.approx([h[key] for h in result.history], rel=1e-6)
    assert [e.step for e in acc.Scalars("train/loss_step")] == [2, 4, 6, 8]  # 9 steps
    assert tags["graph"] is True
    assert result.artifacts["tensorboard"] == trainer.save_dir / "tensorboard"


def test_tensorboard_per_step_scalars_come_from_on_log(make_trainer, loaders) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: list[tuple[int, dict[str, float]]] = []
    trainer = make_trainer(plugins=[TensorBoard(every_n_steps=3)], epochs=3, log_every_n_steps=2)
    trainer.add_callback("on_log", lambda metrics, step, epoch_end: epoch_end or steps.append((step, metrics)))
    result = trainer.fit(*loaders)
    acc = EventAccumulator(str(trainer.save_dir / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    assert [s for s, _ in steps] == [2, 4, 6, 8]  # 9 steps
    lr = acc.Scalars("lr_step")
    assert [e.step for e in lr] == [2, 4, 6, 8]
    assert [e.value for e in lr] == pytest.approx([m["lr"] for _, m in steps])
    # every 2nd step from on_log, and the plugin's own every 3rd: step 6 once, not twice
    loss = acc.Scalars("train/loss_step")
    assert [e.step for e in loss] == [2, 3, 4, 6, 8, 9]
    from_log = {e.step: e.value for e in loss if e.step % 2 == 0}
    assert list(from_log.values()) == pytest.approx([m["train/loss"] for _, m in steps])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]  # the epoch series is unchanged
    assert [e.value for e in acc.Scalars("val/loss")] == pytest.approx([h["val/loss"] for h in result.history])


def test_tensorboard_hparams(make_trainer, loaders) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    trainer = make_trainer(plugins=["tensorboard"], epochs=1, seed=3)
    trainer.fit(*loaders)
    acc = EventAccumulator(str(trainer.save_dir / "tensorboard"))
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    assert session.session_start_info.hparams["seed"].number_value == 3
    assert session.session_start_info.hparams["optimizer"].string_value == "Adam"


def test_onnx_export_matches_with_onnxruntime(make_trainer, loaders, tmp_path) -> None:
    import numpy as np
    import onnxruntime as ort

    trainer = make_trainer(plugins=["onnx", "torchscript"], epochs=1)
    trainer.fit(*loaders)
    assert trainer.export_formats() == ["onnx", "torchscript"]
    path = trainer.export("onnx", tmp_path / "model.onnx")
    session = ort.InferenceSession(str(path))
    x = torch.randn(7, 64)  # a batch size the export never saw
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    trainer.model.eval()
    np.testing.assert_allclose(out, trainer.model(x).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_export_command_onnx(tmp_path, capsys) -> None:
    from trainhooks.tasks import digits_task

    weights = tmp_path / "w.pt"
    torch.save(digits_task().model.state_dict(), weights)
    assert cli.main(["export", "--weights", str(weights), "--format", "onnx", "--save-dir", str(tmp_path / "e")]) == 0
    assert (tmp_path / "e" / "weights" / "model.onnx").is_file()
