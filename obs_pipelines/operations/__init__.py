"""Operations: the lake watching itself and its sources (freshness, doctor) and telling
someone (Alertmanager notifications, Pushgateway metrics)."""
