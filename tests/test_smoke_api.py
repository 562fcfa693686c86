def test_member_launches_vsa_that_turns_active(demo, api, run_tasks):
    client = api(demo.alice)
    with run_tasks():
        response = client.post("/api/v1/instances/", {"name": "store", "category": "vsa"}, format="json")
    assert response.status_code == 202, response.json()
    body = client.get(f"/api/v1/instances/{response.json()['id']}/").json()
    assert body["status"] == "ACTIVE"
    assert body["category"] == "vsa"
