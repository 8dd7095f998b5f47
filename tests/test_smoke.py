from tests.helpers import submit


def test_submit_sends_receipt(client, outbox):
    response = submit(client)
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    mails = outbox()
    assert len(mails) == 1
    assert "tracking" in mails[0]["subject"]
