use keel::Audit;

#[derive(Audit)]
pub struct Customer {
    pub email: String,
    #[audit(skip, redact)]
    pub phone: String,
    #[audit(hide)]
    pub notes: String,
}

fn main() {}
