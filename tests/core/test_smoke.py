def test_health_is_public_and_reports_dependencies(api, db):
    response = api.get("/health")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
