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
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    turn INTEGER  -- the conversation turn that filed it: a turn retried after a crash files nothing twice
);
-- The demo shop's present day: refund windows count to it, so the demo and its evals do not age. A
-- database without this table (a real one) counts to the real date.
CREATE TABLE shop (today TEXT NOT NULL);
INSERT INTO shop (today) VALUES ('2026-11-30');
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
-- More customers and orders for the support_full eval suite (added after the rows above, which tests
-- rely on; ticket ids are unchanged because no ticket is added). Deliveries before November 2026 are
-- outside the 30-day return window of the help centre's returns policy.
INSERT INTO customers (id, name, email, city) VALUES
    (4, 'Diego Ferreira', 'diego@example.com', 'Braga'),
    (5, 'Elena Rossi', 'elena@example.com', 'Turin'),
    (6, 'Farah Haddad', 'farah@example.com', 'Marseille'),
    (7, 'Gustav Lind', 'gustav@example.com', 'Uppsala'),
    (8, 'Hana Sato', 'hana@example.com', 'Valencia'),
    (9, 'Ivo Petrov', 'ivo@example.com', 'Sofia'),
    (10, 'Julia Nowak', 'julia@example.com', 'Krakow');
INSERT INTO orders (id, customer_id, item, amount, status, ordered_on, delivered_on) VALUES
    (1006, 4, 'linen duvet cover', 79.00, 'delivered', '2026-11-12', '2026-11-16'),
    (1007, 4, 'enamel saucepan', 32.50, 'delivered', '2026-11-20', '2026-11-24'),
    (1008, 4, 'Ember 2 kettle', 69.00, 'processing', '2026-11-28', NULL),
    (1009, 5, 'Lumo desk lamp', 119.00, 'shipped', '2026-11-25', NULL),
    (1010, 5, 'set of six tumblers', 27.60, 'delivered', '2026-11-15', '2026-11-19'),
    (1011, 5, 'bath towel set', 45.00, 'delivered', '2026-08-03', '2026-08-07'),
    (1012, 6, 'Brisa air purifier', 189.00, 'delivered', '2026-11-05', '2026-11-09'),
    (1013, 6, 'BF-3 purifier filter', 29.00, 'shipped', '2026-11-26', NULL),
    (1014, 6, 'cotton cushion cover', 18.00, 'cancelled', '2026-11-01', NULL),
    (1015, 7, 'oak side table', 149.00, 'processing', '2026-11-27', NULL),
    (1016, 7, 'scented candle', 14.50, 'delivered', '2026-07-10', '2026-07-15'),
    (1017, 7, 'ceramic vase', 38.00, 'delivered', '2026-11-17', '2026-11-21'),
    (1018, 8, 'wool rug', 210.00, 'delivered', '2026-11-08', '2026-11-13'),
    (1019, 8, 'glass carafe', 22.00, 'returned', '2026-10-20', '2026-10-24'),
    (1020, 8, 'bread bin', 41.00, 'shipped', '2026-11-24', NULL),
    (1021, 9, 'cast iron pan', 64.00, 'delivered', '2026-09-01', '2026-09-04'),
    (1022, 9, 'tea towel set', 16.00, 'delivered', '2026-11-18', '2026-11-21'),
    (1023, 10, 'velvet armchair', 349.00, 'shipped', '2026-11-22', NULL),
    (1024, 10, 'salad bowl', 29.90, 'delivered', '2026-06-02', '2026-06-06'),
    (1025, 10, 'picture frame', 12.00, 'processing', '2026-11-29', NULL);
