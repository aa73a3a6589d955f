//! The small petstore that `serve --dev` runs behind its sample server, so that tool calls work
//! offline: an in-memory store answering the main operations of
//! `openapi-samples/swagger-petstore-v3.yaml` under `/dev-backend/api/v3`. Development only.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// Where the sample backends live on mcpgate's own port; nothing outside it is theirs.
const MOUNT: &str = "/dev-backend";
/// The petstore's base URL on mcpgate's own port.
pub const PREFIX: &str = "/dev-backend/api/v3";
/// The train-travel sample's base URL: no backend answers there, and its calls say so.
pub const TRAIN_TRAVEL: &str = "/dev-backend/train-travel";

#[derive(Clone)]
struct Pets(Arc<Mutex<BTreeMap<i64, Value>>>);

/// Pets are capped so that a client in a loop cannot grow the store without bound.
const MAX_PETS: usize = 1000;

pub fn router() -> Router {
    let mut pets = BTreeMap::new();
    for (id, name, status) in [(1, "doggie", "available"), (2, "kitty", "pending"), (3, "nemo", "sold")] {
        pets.insert(id, json!({"id": id, "name": name, "photoUrls": [], "status": status, "tags": []}));
    }
    let state = Pets(Arc::new(Mutex::new(pets)));
    let petstore = PREFIX.trim_start_matches(MOUNT);
    let train_travel = TRAIN_TRAVEL.trim_start_matches(MOUNT);
    let samples = Router::new()
        .route(&format!("{petstore}/pet"), axum::routing::post(add_pet).put(add_pet))
        .route(&format!("{petstore}/pet/findByStatus"), get(find_by_status))
        .route(&format!("{petstore}/pet/{{id}}"), get(get_pet).delete(delete_pet))
        .route(&format!("{petstore}/store/inventory"), get(inventory))
        .route(&format!("{train_travel}/{{*rest}}"), axum::routing::any(no_train_travel_backend))
        .fallback(|| async {
            (
                StatusCode::NOT_IMPLEMENTED,
                axum::Json(json!({"message": "the sample backend does not implement this operation"})),
            )
        })
        .with_state(state);
    // Nested, so that its fallback answers only below the mount and unknown paths elsewhere are
    // mcpgate's 404.
    Router::new().nest(MOUNT, samples)
}

/// The train-travel sample is there to browse what the conversion makes of an OpenAPI 3.1
/// document; no backend stands behind it.
async fn no_train_travel_backend() -> Response {
    let message = "the train-travel sample has no backend under serve --dev: its tools show what mcpgate \
                   makes of an OpenAPI 3.1 document, and their calls end here";
    (StatusCode::NOT_IMPLEMENTED, axum::Json(json!({"message": message}))).into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(json!({"message": "Pet not found"}))).into_response()
}

async fn get_pet(State(pets): State<Pets>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "Invalid ID supplied"})))
            .into_response();
    };
    let pet = pets.0.lock().ok().and_then(|it| it.get(&id).cloned());
    pet.map_or_else(not_found, |it| axum::Json(it).into_response())
}

async fn delete_pet(State(pets): State<Pets>, Path(id): Path<String>) -> Response {
    let removed = id.parse::<i64>().ok().and_then(|id| pets.0.lock().ok()?.remove(&id));
    match removed {
        Some(_) => StatusCode::OK.into_response(),
        None => not_found(),
    }
}

async fn find_by_status(State(pets): State<Pets>, Query(query): Query<BTreeMap<String, String>>) -> Response {
    let status = query.get("status").map_or("available", String::as_str);
    let found: Vec<Value> = pets
        .0
        .lock()
        .map(|it| it.values().filter(|pet| pet["status"] == status).cloned().collect())
        .unwrap_or_default();
    axum::Json(found).into_response()
}

async fn add_pet(State(pets): State<Pets>, body: axum::body::Bytes) -> Response {
    let Ok(Value::Object(mut pet)) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "Invalid input"}))).into_response();
    };
    let Ok(mut store) = pets.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let id = pet
        .get("id")
        .and_then(Value::as_i64)
        .unwrap_or_else(|| store.keys().last().copied().unwrap_or(0) + 1);
    if store.len() >= MAX_PETS && !store.contains_key(&id) {
        return (
            StatusCode::INSUFFICIENT_STORAGE,
            axum::Json(json!({"message": "the sample store is full"})),
        )
            .into_response();
    }
    pet.insert("id".to_owned(), json!(id));
    let pet = Value::Object(pet);
    store.insert(id, pet.clone());
    axum::Json(pet).into_response()
}

async fn inventory(State(pets): State<Pets>) -> Response {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    if let Ok(store) = pets.0.lock() {
        for pet in store.values() {
            *counts.entry(pet["status"].as_str().unwrap_or("unknown").to_owned()).or_default() += 1;
        }
    }
    axum::Json(counts).into_response()
}
