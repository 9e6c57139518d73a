use keel::Service;

#[derive(Service)]
pub enum Model {
    A,
    B,
}

fn main() {}
