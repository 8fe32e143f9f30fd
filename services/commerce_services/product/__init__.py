"""Product service: catalog (MongoDB), categories and inventory with reservations (MariaDB)."""
