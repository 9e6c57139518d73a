use keel::Service;

#[derive(Service)]
pub struct Model {
    pub id: i64,
    pub name: String,
}

fn main() {}
