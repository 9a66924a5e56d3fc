"""Text that cannot be stored or shown is refused at the edge: lone surrogates, control characters, odd names."""

from __future__ import annotations

import typing
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from sft_ui import artifacts, playground
from sft_ui.config import SFTConfig, check_text, describe_errors
from sft_ui.manager import JobManager
from sft_ui.web.app import build_app

JSON = {"Content-Type": "application/json"}
# Every text field of SFTConfig: plain str fields and the items of list[str] fields.
TEXT_FIELDS = [name for name, field in SFTConfig.model_fields.items() if field.annotation is str]
LIST_FIELDS = [name for name, field in SFTConfig.model_fields.items() if typing.get_args(field.annotation) == (str,)]


@pytest.fixture
def api_manager(quiet: JobManager) -> JobManager:
    """`client` serves a manager whose jobs never start."""
    return quiet


def raw_post(client: TestClient, path: str, body: str) -> tuple[int, str]:
    """POST a JSON text as written (httpx cannot encode a lone surrogate itself): (status, detail)."""
    response = client.post(f"/api/sft{path}", content=body.encode(), headers=JSON)
    return response.status_code, response.json().get("detail", "")


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_a_lone_surrogate_in_any_config_text_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SFTConfig(**{field: "a\ud800"})
    assert f"{field}: contains a lone surrogate (\\ud800)" in describe_errors(caught.value)


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_a_control_character_in_any_config_text_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SFTConfig(**{field: "a\x07b"})
    assert f"{field}: contains a control character U+0007" in describe_errors(caught.value)


@pytest.mark.parametrize("field", LIST_FIELDS)
def test_a_lone_surrogate_in_a_list_item_is_refused_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SFTConfig(**{field: ["c_attn", "q\udfff"]})
    assert f"{field}: item 1: contains a lone surrogate (\\udfff)" in describe_errors(caught.value)


def test_check_text_allows_newline_and_tab_only_when_multiline() -> None:
    assert check_text("line 1\n\tline 2\r\n", "prompt", multiline=True) == "line 1\n\tline 2\r\n"
    with pytest.raises(ValueError, match="prompt: contains a control character U\\+000A"):
        check_text("line 1\nline 2", "prompt")


def test_check_text_refuses_other_control_characters_in_multiline_text() -> None:
    with pytest.raises(ValueError, match="prompt: contains a control character U\\+001B"):
        check_text("red \x1b[31m", "prompt", multiline=True)


def test_a_config_name_with_a_lone_surrogate_is_400_naming_the_name(client: TestClient) -> None:
    status, detail = raw_post(client, "/configs", '{"name": "\\ud800", "config": {}}')
    assert status == 400
    assert detail.startswith("name: contains a lone surrogate (\\ud800)")


def test_a_refused_config_name_leaves_the_store_writable(client: TestClient, quiet: JobManager) -> None:
    raw_post(client, "/configs", '{"name": "\\ud800", "config": {}}')
    status, _ = raw_post(client, "/configs", '{"name": "fine", "config": {}}')
    assert status == 200
    assert [c["name"] for c in quiet.list_configs()] == ["fine"]


def test_a_config_name_with_a_control_character_is_a_value_error_in_python(quiet: JobManager) -> None:
    with pytest.raises(ValueError, match="name: contains a control character U\\+0000"):
        quiet.save_config("a\x00b", {})


def test_a_job_name_with_a_lone_surrogate_is_400_and_creates_no_job(client: TestClient, quiet: JobManager) -> None:
    status, detail = raw_post(client, "/train", '{"config": {"job_name": "x\\udc00"}}')
    assert status == 400
    assert "config.job_name: contains a lone surrogate (\\udc00)" in detail
    assert quiet.list_jobs() == []


def test_a_saved_config_with_a_control_character_in_its_config_is_400(client: TestClient) -> None:
    status, detail = raw_post(client, "/configs", '{"name": "n", "config": {"dataset_name": "a\\u0085b"}}')
    assert status == 400
    assert "config.dataset_name: contains a control character U+0085" in detail


@pytest.mark.parametrize("text", ["a\ud800", "a\x07"])
def test_playground_prompt_and_input_refuse_bad_text(text: str) -> None:
    with pytest.raises(ValueError, match="^input: contains a"):
        playground.check_settings("fine\n\tprompt", 8, 0.0, 1.0, text)


def test_generate_with_a_lone_surrogate_in_the_prompt_is_400_naming_prompt(client: TestClient,
                                                                          quiet: JobManager) -> None:
    job_id = quiet.create_job({})
    status, detail = raw_post(client, f"/jobs/{job_id}/generate", '{"prompt": "hi \\ud800"}')
    assert status == 400
    assert detail.startswith("prompt: contains a lone surrogate")


def test_push_with_a_lone_surrogate_in_the_repo_id_is_400_naming_repo_id(client: TestClient,
                                                                        quiet: JobManager) -> None:
    job_id = quiet.create_job({})
    status, detail = raw_post(client, f"/jobs/{job_id}/push", '{"repo_id": "me/\\ud800"}')
    assert status == 400
    assert detail.startswith("repo_id: contains a lone surrogate")


def test_push_in_python_refuses_a_control_character_in_the_repo_id(quiet: JobManager) -> None:
    job_id = quiet.create_job({})
    with pytest.raises(ValueError, match="^repo_id: contains a control character U\\+0009"):
        artifacts.push(quiet, job_id, "me/\tmodel")


@pytest.fixture(scope="module")
def gradio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, JobManager]]:
    """The whole app (REST and Gradio) over a manager that starts no worker."""
    manager = JobManager(data_dir=tmp_path_factory.mktemp("validation") / "data").start()
    manager._schedule = lambda: None  # type: ignore[method-assign]
    with TestClient(build_app(manager)) as test_client:
        yield test_client, manager


def gradio_call(test_client: TestClient, name: str, data: str) -> str:
    """Call a named Gradio endpoint with `data` (a JSON list as written); its event stream."""
    event = test_client.post(f"/gradio_api/call/{name}", content=f'{{"data": {data}}}'.encode(), headers=JSON)
    return test_client.get(f"/gradio_api/call/{name}/{event.json()['event_id']}").text


def test_the_gradio_save_config_endpoint_refuses_a_lone_surrogate(gradio: tuple[TestClient, JobManager]) -> None:
    stream = gradio_call(gradio[0], "save_config", '["\\ud800", {}]')
    assert "name: contains a lone surrogate" in stream
    assert gradio[1].list_configs() == []


@pytest.mark.parametrize(("name", "field"), [("get_job", "job_id"), ("stop_job", "job_id"), ("resume_job", "job_id"),
                                             ("get_config", "config_id"), ("list_jobs", "status")])
def test_gradio_endpoints_name_an_id_holding_a_control_character(gradio: tuple[TestClient, JobManager], name: str,
                                                                 field: str) -> None:
    # A raw call sends a value for every parameter (optional ones added later too; extra values are ignored).
    stream = gradio_call(gradio[0], name, '["a\\u001b", null, null, null]')
    assert f"{field}: contains a control character U+001B" in stream


@pytest.mark.parametrize("value", ["   ", "gpt 2", " gpt2", "org/model\u3000x"])
def test_a_base_model_that_is_blank_or_holds_spaces_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="base_model"):
        SFTConfig(base_model=value)


def test_a_base_model_of_spaces_is_400_naming_base_model(client: TestClient) -> None:
    status, detail = raw_post(client, "/train", '{"config": {"base_model": "   "}}')
    assert status == 400
    assert detail.startswith("config.base_model: must not be empty")


@pytest.mark.parametrize("name", [".", "..", "..."])
def test_lora_target_modules_refuse_names_of_dots_only(name: str) -> None:
    with pytest.raises(ValidationError, match="lora_target_modules"):
        SFTConfig(lora_target_modules=["q_proj", name])
