//! Demo content: plausible Laravel file names and a project name for a prompt, so
//! that the default streams read like a real generation. Nothing else in the mock
//! depends on it: the scripts take a plain list of paths. Naive on purpose: a small
//! table of models and an English plural good enough for it.

/// Prompt words (singular) that name a model, the word title-cased.
const MODELS: &[&str] = &[
    "task", "todo", "post", "comment", "invoice", "product", "order", "contact", "customer",
    "book", "ticket", "category",
];

/// Leading words that never name a project.
const FILLER: &[&str] = &[
    "build", "create", "make", "generate", "i", "we", "want", "need", "please", "me", "a", "an",
    "the", "simple", "basic", "new", "small", "my", "our", "web", "laravel",
];

/// The files of a new project or a follow-up for `prompt`: those of each model it
/// names (at most three), then for a new project the layout and the routes; a new
/// project that names no model gets an `Item`, a follow-up that names none the
/// layout and the styles.
pub(crate) fn files(prompt: &str, new_project: bool) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    for word in words(prompt) {
        let single = match word.strip_suffix("ies") {
            Some(stem) => format!("{stem}y"),
            None => word.strip_suffix('s').unwrap_or(&word).to_owned(),
        };
        let key = [word.as_str(), &single]
            .into_iter()
            .find(|w| MODELS.contains(w));
        if let Some(model) = key.map(title).filter(|m| !models.contains(m)) {
            models.push(model);
        }
    }
    models.truncate(3);
    if models.is_empty() && new_project {
        models.push("Item".to_owned());
    }
    let date = if new_project {
        "2024_01_01"
    } else {
        "2024_06_01"
    };
    let mut files = Vec::new();
    for (i, model) in models.iter().enumerate() {
        let table = plural(&model.to_ascii_lowercase());
        files.push(format!(
            "database/migrations/{date}_{:06}_create_{table}_table.php",
            i + 1
        ));
        files.push(format!("app/Models/{model}.php"));
        files.push(format!("database/factories/{model}Factory.php"));
        files.push(format!("app/Http/Controllers/{model}Controller.php"));
        files.push(format!("app/Http/Requests/Store{model}Request.php"));
        for view in ["index", "create", "show", "edit"] {
            files.push(format!("resources/views/{table}/{view}.blade.php"));
        }
        files.push(format!("tests/Feature/{model}Test.php"));
    }
    let layout = "resources/views/layouts/app.blade.php".to_owned();
    if new_project {
        files.push(layout);
    } else if files.is_empty() {
        files.extend([layout, "resources/css/app.css".to_owned()]);
    }
    files.push("routes/web.php".to_owned());
    files
}

/// The prompt's words after the leading filler, title-cased, at most six:
/// "Build a task management app" -> "Task Management App".
pub(crate) fn project_name(prompt: &str) -> String {
    let words: Vec<String> = words(prompt)
        .skip_while(|w| FILLER.contains(&w.as_str()))
        .take(6)
        .map(|w| title(&w))
        .collect();
    if words.is_empty() {
        return "Untitled Project".to_owned();
    }
    words.join(" ")
}

/// Lowercase ASCII alphanumeric words.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

fn title(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

fn plural(word: &str) -> String {
    match word.strip_suffix('y') {
        Some(stem) => format!("{stem}ies"),
        None if word.ends_with('s') || word.ends_with('x') => format!("{word}es"),
        None => format!("{word}s"),
    }
}

/// The subscription plans, shaped as the API reference's sample (its Stripe ids
/// left out, as the page says the answer does).
pub(crate) fn plans() -> Vec<serde_json::Value> {
    let plan = |id: u64, name: &str, price: &str, credits: u64, projects: u64, seats: u64| {
        serde_json::json!({
            "id": id,
            "name": name,
            "slug": name.to_ascii_lowercase(),
            "price": price,
            "credits_per_month": credits,
            "credits_per_dollar": 25,
            "max_projects": projects,
            "max_team_seats": seats,
            "features": [format!("{credits} credits a month"), format!("{projects} projects")],
            "is_active": true,
            "is_featured": name == "Pro",
            "is_custom": false,
            "sort_order": id,
            "created_at": "2025-01-01T00:00:00.000000Z",
            "updated_at": "2025-01-01T00:00:00.000000Z",
            "price_display": format!("${price}/month"),
        })
    };
    vec![
        plan(1, "Starter", "19.00", 500, 3, 1),
        plan(2, "Pro", "49.00", 1500, 10, 3),
        plan(3, "Team", "99.00", 4000, 50, 10),
    ]
}
