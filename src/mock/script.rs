//! The event scripts: the default ones, derived from the prompt, and custom ones
//! queued with `script_next`. Events are produced one at a time, on demand.

use serde_json::{json, Value};

/// `container_progress` steps of a new project: percentage and message.
const CONTAINER_STEPS: [(u8, &str); 6] = [
    (10, "Provisioning container..."),
    (25, "Pulling base image..."),
    (40, "Installing Laravel..."),
    (60, "Installing dependencies..."),
    (80, "Configuring database..."),
    (100, "Starting services..."),
];

/// Events of a new project's default script before its generation events:
/// `project_created`, the container steps and `container_ready`.
const NEW_PROJECT_PRELUDE: usize = 1 + CONTAINER_STEPS.len() + 1;

/// The fewest events a default new-project script can have: its prelude and
/// `stream_end`.
pub(crate) const MIN_EVENTS: usize = NEW_PROJECT_PRELUDE + 1;

/// Prompt words that name a kind of application, and the models it gets.
const DOMAINS: &[(&str, &[&str])] = &[
    ("task", &["Task"]),
    ("todo", &["Todo"]),
    ("project", &["Project", "Task"]),
    ("blog", &["Post", "Comment"]),
    ("post", &["Post"]),
    ("comment", &["Comment"]),
    ("invoice", &["Invoice", "Client"]),
    ("shop", &["Product", "Order"]),
    ("store", &["Product", "Order"]),
    ("ecommerce", &["Product", "Order"]),
    ("product", &["Product"]),
    ("order", &["Order"]),
    ("crm", &["Contact", "Deal"]),
    ("contact", &["Contact"]),
    ("customer", &["Customer"]),
    ("inventory", &["Item", "Supplier"]),
    ("recipe", &["Recipe"]),
    ("book", &["Book"]),
    ("library", &["Book", "Member"]),
    ("event", &["Event"]),
    ("booking", &["Booking"]),
    ("appointment", &["Appointment"]),
    ("note", &["Note"]),
    ("employee", &["Employee"]),
    ("ticket", &["Ticket"]),
    ("helpdesk", &["Ticket"]),
    ("expense", &["Expense", "Category"]),
    ("category", &["Category"]),
    ("tag", &["Tag"]),
    ("student", &["Student", "Course"]),
    ("course", &["Course"]),
];

/// Words naming the thing being built ("a *habit tracker*"): the word before one of
/// them names the model when no domain word matched.
const KIND_WORDS: &[&str] = &[
    "app",
    "application",
    "management",
    "manager",
    "tracker",
    "system",
    "platform",
    "dashboard",
    "portal",
    "site",
    "website",
    "api",
];

/// Words that never name a model or a project.
const FILLER: &[&str] = &[
    "build", "create", "make", "generate", "develop", "write", "design", "i", "we", "want", "need",
    "please", "me", "us", "a", "an", "the", "simple", "basic", "new", "small", "my", "our", "web",
    "laravel", "for", "with", "and",
];

/// The files generated for one model.
fn model_files(model: &str, migration: &str) -> Vec<String> {
    let table = plural(&model.to_ascii_lowercase());
    vec![
        format!("database/migrations/{migration}_create_{table}_table.php"),
        format!("app/Models/{model}.php"),
        format!("database/factories/{model}Factory.php"),
        format!("app/Http/Controllers/{model}Controller.php"),
        format!("app/Http/Requests/Store{model}Request.php"),
        format!("resources/views/{table}/index.blade.php"),
        format!("resources/views/{table}/create.blade.php"),
        format!("resources/views/{table}/show.blade.php"),
        format!("resources/views/{table}/edit.blade.php"),
        format!("tests/Feature/{model}Test.php"),
    ]
}

/// The files of a new project generated from `prompt`.
pub(crate) fn new_project_files(prompt: &str) -> Vec<String> {
    let mut models = domain_models(prompt);
    if models.is_empty() {
        models.push(kind_model(prompt).unwrap_or_else(|| "Item".to_owned()));
    }
    let mut files = Vec::new();
    for (i, model) in models.iter().enumerate() {
        files.extend(model_files(model, &format!("2024_01_01_{:06}", i + 1)));
    }
    files.push("resources/views/layouts/app.blade.php".to_owned());
    files.push("routes/web.php".to_owned());
    files
}

/// The files a follow-up with `prompt` touches: the models it names, or the layout
/// and styles.
pub(crate) fn follow_up_files(prompt: &str) -> Vec<String> {
    let models = domain_models(prompt);
    let mut files = Vec::new();
    for (i, model) in models.iter().enumerate() {
        files.extend(model_files(model, &format!("2024_06_01_{:06}", i + 1)));
    }
    if models.is_empty() {
        files.push("resources/views/layouts/app.blade.php".to_owned());
        files.push("resources/css/app.css".to_owned());
    }
    files.push("routes/web.php".to_owned());
    files
}

/// A project name from the prompt: its first meaningful words in title case, e.g.
/// "Build a task management app" -> "Task Management App".
pub(crate) fn project_name(prompt: &str) -> String {
    let words: Vec<String> = words(prompt)
        .skip_while(|w| FILLER.contains(&w.as_str()))
        .take(6)
        .map(|w| capitalize(&w))
        .collect();
    if words.is_empty() {
        "Untitled Project".to_owned()
    } else {
        words.join(" ")
    }
}

/// Lowercase ASCII alphanumeric words.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
}

/// Models named by domain words of the prompt, at most three, in order.
fn domain_models(prompt: &str) -> Vec<String> {
    let mut models: Vec<String> = Vec::new();
    for word in words(prompt) {
        let single = singular(&word);
        for (key, names) in DOMAINS {
            if word == *key || single == *key {
                for name in *names {
                    if !models.iter().any(|m| m == name) {
                        models.push((*name).to_owned());
                    }
                }
            }
        }
    }
    models.truncate(3);
    models
}

/// The model named by the word before a kind word ("habit tracker" -> "Habit").
fn kind_model(prompt: &str) -> Option<String> {
    let words: Vec<String> = words(prompt).collect();
    words.windows(2).find_map(|pair| {
        let (word, kind) = (&pair[0], &pair[1]);
        let usable = KIND_WORDS.contains(&kind.as_str())
            && !FILLER.contains(&word.as_str())
            && !KIND_WORDS.contains(&word.as_str())
            && word.len() <= 24
            && word.chars().all(|c| c.is_ascii_alphabetic());
        usable.then(|| capitalize(&singular(word)))
    })
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies").filter(|s| s.len() > 1) {
        return format!("{stem}y");
    }
    for suffix in ["sses", "xes", "ches", "shes"] {
        if word.ends_with(suffix) {
            return word[..word.len() - 2].to_owned();
        }
    }
    match word.strip_suffix('s') {
        Some(stem) if stem.len() > 2 && !stem.ends_with('s') => stem.to_owned(),
        _ => word.to_owned(),
    }
}

fn plural(word: &str) -> String {
    let consonant_y = word.len() > 1
        && word.ends_with('y')
        && !matches!(
            word.as_bytes()[word.len() - 2],
            b'a' | b'e' | b'i' | b'o' | b'u'
        );
    if consonant_y {
        format!("{}ies", &word[..word.len() - 1])
    } else if ["s", "x", "ch", "sh"].iter().any(|s| word.ends_with(s)) {
        format!("{word}es")
    } else {
        format!("{word}s")
    }
}

/// The events of one stream, produced one at a time.
#[derive(Debug)]
pub(crate) enum Script {
    /// A script queued with `script_next`, sent as given.
    Custom(std::vec::IntoIter<Value>),
    /// The default script.
    Default(DefaultScript),
}

impl Script {
    pub(crate) fn next_event(&mut self) -> Option<Value> {
        match self {
            Script::Custom(events) => events.next(),
            Script::Default(script) => script.next_event(),
        }
    }
}

/// The default script of a new project or a follow-up: (`project_created`,
/// `container_progress`..., `container_ready`,) pairs of `tool_progress` and
/// `file_created` cycling over the planned files (`"action": "created"` the first
/// time, `"updated"` after), a final `tool_progress` when the count is odd, and
/// `stream_end`.
#[derive(Debug)]
pub(crate) struct DefaultScript {
    project_id: String,
    app_url: String,
    new_project: bool,
    files: Vec<String>,
    total: usize,
    index: usize,
}

impl DefaultScript {
    /// A script of `events` events (at least [`MIN_EVENTS`] for a new project, 1 for
    /// a follow-up; fewer are raised to that), or of its natural length: two events
    /// per file and a final command.
    pub(crate) fn new(
        project_id: String,
        app_url: String,
        new_project: bool,
        files: Vec<String>,
        events: Option<usize>,
    ) -> Self {
        let prelude = if new_project { NEW_PROJECT_PRELUDE } else { 0 };
        let natural = prelude + 2 * files.len() + 1 + 1;
        let total = events.unwrap_or(natural).max(prelude + 1);
        DefaultScript {
            project_id,
            app_url,
            new_project,
            files,
            total,
            index: 0,
        }
    }

    fn next_event(&mut self) -> Option<Value> {
        let i = self.index;
        if i >= self.total {
            return None;
        }
        self.index += 1;
        let prelude = if self.new_project {
            NEW_PROJECT_PRELUDE
        } else {
            0
        };
        if i + 1 == self.total {
            return Some(json!({
                "type": "stream_end",
                "project_id": self.project_id,
                "app_url": self.app_url,
            }));
        }
        if i < prelude {
            return Some(self.prelude_event(i));
        }
        Some(self.generation_event(i - prelude, self.total - prelude - 1))
    }

    fn prelude_event(&self, i: usize) -> Value {
        match i {
            0 => json!({
                "type": "project_created",
                "project_id": self.project_id,
                "app_url": self.app_url,
            }),
            i if i <= CONTAINER_STEPS.len() => {
                let (percentage, message) = CONTAINER_STEPS[i - 1];
                json!({"type": "container_progress", "message": message, "percentage": percentage})
            }
            _ => json!({
                "type": "container_ready",
                "message": "Container ready. Starting AI generation...",
            }),
        }
    }

    /// Generation event `j` of `count`.
    fn generation_event(&self, j: usize, count: usize) -> Value {
        if count % 2 == 1 && j + 1 == count {
            let command = if self.new_project {
                "php artisan migrate"
            } else {
                "npm run build"
            };
            return json!({
                "type": "tool_progress",
                "tool": "run_command",
                "message": format!("Running {command}"),
            });
        }
        let pair = j / 2;
        let path = match self.files.get(pair % self.files.len().max(1)) {
            Some(path) => path.as_str(),
            None => "routes/web.php",
        };
        let second_of_pair = j % 2 == 1;
        if second_of_pair {
            let action = if pair < self.files.len() {
                "created"
            } else {
                "updated"
            };
            json!({"type": "file_created", "path": path, "action": action})
        } else {
            json!({"type": "tool_progress", "tool": "write_file", "message": format!("Writing {path}")})
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_management_app_gets_task_files() {
        let files = new_project_files("Build a task management app");
        for path in [
            "app/Models/Task.php",
            "database/migrations/2024_01_01_000001_create_tasks_table.php",
            "app/Http/Controllers/TaskController.php",
            "resources/views/tasks/index.blade.php",
            "routes/web.php",
        ] {
            assert!(files.iter().any(|f| f == path), "{path} in {files:?}");
        }
        assert_eq!(
            project_name("Build a task management app"),
            "Task Management App"
        );
    }

    #[test]
    fn unknown_domains_use_the_word_before_the_kind_of_app() {
        let files = new_project_files("Create a habit tracker with streaks");
        assert!(
            files.iter().any(|f| f == "app/Models/Habit.php"),
            "{files:?}"
        );
        let files = new_project_files("!!!");
        assert!(
            files.iter().any(|f| f == "app/Models/Item.php"),
            "{files:?}"
        );
        assert_eq!(project_name("!!!"), "Untitled Project");
    }

    #[test]
    fn plurals_and_singulars_follow_english_rules() {
        assert_eq!(plural("category"), "categories");
        assert_eq!(plural("day"), "days");
        assert_eq!(plural("box"), "boxes");
        assert_eq!(plural("task"), "tasks");
        assert_eq!(singular("categories"), "category");
        assert_eq!(singular("tasks"), "task");
        assert_eq!(singular("boxes"), "box");
        assert_eq!(singular("class"), "class");
    }

    #[test]
    fn a_sized_script_has_exactly_that_many_events_ending_with_stream_end() {
        for total in [MIN_EVENTS, MIN_EVENTS + 1, 300] {
            let mut script = DefaultScript::new(
                "p1".into(),
                "https://p1.laracopilot.com".into(),
                true,
                new_project_files("Build a blog"),
                Some(total),
            );
            let events: Vec<Value> = std::iter::from_fn(|| script.next_event()).collect();
            assert_eq!(events.len(), total);
            assert_eq!(events[0]["type"], "project_created");
            assert_eq!(events[NEW_PROJECT_PRELUDE - 1]["type"], "container_ready");
            assert_eq!(events[total - 1]["type"], "stream_end");
        }
    }
}
