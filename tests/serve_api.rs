//! `serve-api` follows randomuser.me's parameter rules, so any client can use it in its place.

use userstream::source::serve_api;

async fn server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(userstream::http::serve(
        listener,
        serve_api::router(),
        tokio_util::sync::CancellationToken::new(),
    ));
    url
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(&response.bytes().await.unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn pages_filters_and_field_selection_behave_like_the_api() {
    let base = server().await;
    let (status, a) = get(&format!("{base}/api/?results=20&seed=x&page=1")).await;
    assert_eq!(status, 200);
    assert_eq!(a["results"].as_array().unwrap().len(), 20);
    assert_eq!(a["info"]["seed"], "x");
    let (_, b) = get(&format!("{base}/api/1.4/?results=10&seed=x&page=2")).await;
    assert_eq!(
        a["results"].as_array().unwrap()[10..],
        b["results"].as_array().unwrap()[..]
    );

    for bad in ["0", "5001", "many", "-3"] {
        let (_, page) = get(&format!("{base}/api/?results={bad}")).await;
        assert_eq!(
            page["results"].as_array().unwrap().len(),
            1,
            "results={bad}"
        );
    }

    let (_, gb) = get(&format!("{base}/api/?results=30&nat=gb,ca&gender=female")).await;
    for user in gb["results"].as_array().unwrap() {
        assert!(["GB", "CA"].contains(&user["nat"].as_str().unwrap()));
        assert_eq!(user["gender"], "female");
        assert!(user["location"]["postcode"].is_string());
    }

    let (_, inc) = get(&format!("{base}/api/?results=3&inc=name,login")).await;
    let user = inc["results"][0].as_object().unwrap();
    assert_eq!(user.keys().collect::<Vec<_>>(), ["login", "name"]);
    let (_, exc) = get(&format!("{base}/api/?results=3&exc=login")).await;
    assert!(exc["results"][0].get("login").is_none());
    assert!(exc["results"][0].get("email").is_some());

    let (status, error) = get(&format!("{base}/api/?nat=XX")).await;
    assert_eq!(status, 400);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("unknown nationality")
    );
}
