use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn catalog_lists_repositories_in_order_with_pagination() {
    let s = TestServer::start().await;
    for repo in ["zeta", "alpha", "team/models/bert"] {
        s.push_blob(repo, b"x").await;
    }
    let body = json_body(s.get("/v2/_catalog").await).await;
    assert_eq!(
        body,
        json!({ "repositories": ["alpha", "team/models/bert", "zeta"] })
    );
    let r = s.get("/v2/_catalog?n=1").await;
    assert_eq!(
        header(&r, "link").as_deref(),
        Some("</v2/_catalog?n=1&last=alpha>; rel=\"next\"")
    );
    let r = s.get("/v2/_catalog?n=1&last=alpha").await;
    assert_eq!(
        json_body(r).await["repositories"],
        json!(["team/models/bert"])
    );
}
