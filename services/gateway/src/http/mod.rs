//! The gateway's HTTP surface: the server process (`serve`: router, backends, draining), the API
//! routes with their OpenAPI document (`routes`), and the playground page at `GET /`.

pub mod playground;
pub mod routes;
pub mod serve;
