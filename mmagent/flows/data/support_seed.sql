-- Demo business database of the `support` flow (fictional customers of a small home-goods shop).
-- Created in <paths.data>/support_demo.sqlite on first use; delete that file to start over.
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    city TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    item TEXT NOT NULL,
    amount REAL NOT NULL,
    currency TEXT NOT NULL DEFAULT 'EUR',
    status TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'returned', 'cancelled')),
    ordered_on TEXT NOT NULL,
    delivered_on TEXT
);
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER REFERENCES customers(id),
    order_id INTEGER REFERENCES orders(id),
    kind TEXT NOT NULL CHECK (kind IN ('refund', 'damaged', 'delivery', 'other', 'escalation')),
    summary TEXT NOT NULL,
    amount REAL,
    attachment TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    session TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
INSERT INTO customers (id, name, email, city) VALUES
    (1, 'Ana Lima', 'ana@example.com', 'Porto'),
    (2, 'Ben Okafor', 'ben@example.com', 'Leeds'),
    (3, 'Chloe Martin', 'chloe@example.com', 'Lyon');
INSERT INTO orders (id, customer_id, item, amount, status, ordered_on, delivered_on) VALUES
    (1001, 1, 'ceramic teapot', 34.90, 'delivered', '2026-11-02', '2026-11-06'),
    (1002, 1, 'oak bookshelf', 189.00, 'shipped', '2026-11-18', NULL),
    (1003, 2, 'wool blanket', 59.50, 'processing', '2026-11-21', NULL),
    (1004, 3, 'desk lamp', 24.00, 'delivered', '2026-10-28', '2026-11-01'),
    (1005, 3, 'espresso machine', 249.00, 'delivered', '2026-11-10', '2026-11-14');
INSERT INTO tickets (customer_id, order_id, kind, summary, status, created_at) VALUES
    (3, 1004, 'delivery', 'Parcel left with a neighbour', 'closed', '2026-11-02 10:00:00');
