from django.core.management import call_command


def test_the_openapi_schema_generates_without_warnings(tmp_path, db):
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/tickets/{id}/approve/" in text and "TicketStatusEnum" in text
    assert "/api/tickets/{id}/promote/" in text and "/api/tickets/{id}/retry/" in text
    assert "/api/tickets/{id}/cancel/" in text and "cancelling" in text
